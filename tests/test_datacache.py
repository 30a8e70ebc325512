"""The decoded-track cache: keys that follow the files' contents, and `deepsep data cache`."""

import os
import shutil

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner

from deepsep import musdb
from deepsep.cli import main
from deepsep.datacache import least_recently_used, stale_decodes

SR = 44100


def _track(folder, seed=0):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for s in musdb.SOURCES:
        sf.write(folder / f"{s}.wav", (0.1 * rng.standard_normal((2048, 2))).astype(np.float32), SR, subtype="FLOAT")
    return musdb.find_tracks(folder.parent)[0]


def test_a_copied_track_reuses_its_decode_and_a_changed_one_is_decoded_again(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    first = musdb.cached_track(_track(tmp_path / "a" / "Song"), cache)
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a fresh copy: another path, new mtimes
    os.utime(tmp_path / "b" / "Song" / "bass.wav", (1e9, 1e9))
    copy = musdb.find_tracks(tmp_path / "b")[0]
    decode = musdb.decode_track
    monkeypatch.setattr(musdb, "decode_track", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(musdb.cached_track(copy, cache), first)
    x, _ = sf.read(tmp_path / "b" / "Song" / "bass.wav", dtype="float32")
    sf.write(tmp_path / "b" / "Song" / "bass.wav", 0.5 * x, SR, subtype="FLOAT")  # same size, other contents
    monkeypatch.setattr(musdb, "decode_track", decode)
    changed = musdb.cached_track(copy, cache)
    assert not np.array_equal(changed, first) and len(list(cache.glob("Song.*.npy"))) == 2


def test_stale_and_least_recently_used_decodes(tmp_path):
    for i, name in enumerate(["A.0000000000000001.44100.npy", "A.0000000000000002.44100.npy",
                              "A.0000000000000003.22050.npy", "B.0000000000000004.44100.npy",
                              "B.0000000000000004.44100.npy.partial-12.npy", "notes.txt"]):
        (tmp_path / name).write_bytes(b"x" * 100)
        os.utime(tmp_path / name, (1000 + i, 1000 + i))
    stale = stale_decodes(tmp_path, now=1000 + 3600 + 10)
    # A's first decode was superseded at the same rate; the other rate is another decode; the
    # unfinished file is older than an hour; B's only decode and the text file stay
    assert [p.name for p in stale] == ["A.0000000000000001.44100.npy", "B.0000000000000004.44100.npy.partial-12.npy"]
    assert stale_decodes(tmp_path, now=1000 + 60)[0].name == "A.0000000000000001.44100.npy"  # a recent partial stays
    lru = least_recently_used(tmp_path, 150, skip=set(stale))
    assert [p.name for p in lru] == ["A.0000000000000002.44100.npy", "A.0000000000000003.22050.npy"]
    assert least_recently_used(tmp_path, 10**6) == []


def test_data_cache_reports_and_prunes(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSEP_CACHE", str(tmp_path / "c"))
    runner = CliRunner()
    res = runner.invoke(main, ["data", "cache"])
    assert res.exit_code == 0 and "empty" in res.output, res.output
    decoded = tmp_path / "c" / "musdb"
    decoded.mkdir(parents=True)
    for i, key in enumerate(["0000000000000001", "0000000000000002"]):
        (decoded / f"T.{key}.44100.npy").write_bytes(b"x" * 1000)
        os.utime(decoded / f"T.{key}.44100.npy", (1000 + i, 1000 + i))
    res = runner.invoke(main, ["data", "cache"])
    assert res.exit_code == 0 and "1 stale decoded tracks" in res.output and "musdb" in res.output, res.output
    res = runner.invoke(main, ["data", "cache", "--dry-run"])
    assert res.exit_code == 2 and "--dry-run goes with" in res.output
    res = runner.invoke(main, ["data", "cache", "--prune", "--dry-run"])
    assert res.exit_code == 0 and "would remove 1" in res.output and len(list(decoded.iterdir())) == 2
    res = runner.invoke(main, ["data", "cache", "--prune"])
    assert res.exit_code == 0 and "removed 1" in res.output
    assert [p.name for p in decoded.iterdir()] == ["T.0000000000000002.44100.npy"]
    res = runner.invoke(main, ["data", "cache", "--max-gb", "0"])
    assert res.exit_code == 0 and not list(decoded.iterdir()), res.output


def test_a_read_only_cache_is_still_read(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    track = _track(tmp_path / "a" / "Song")
    first = musdb.cached_track(track, cache)

    def refuse(*a, **k):
        raise PermissionError("read-only file system")

    monkeypatch.setattr(musdb.os, "utime", refuse)  # marking its last use fails where the cache is read-only
    monkeypatch.setattr(musdb, "decode_track", lambda *a, **k: pytest.fail("decoded again"))
    np.testing.assert_array_equal(musdb.cached_track(track, cache), first)

"""Reading damaged and oddly named inputs: truncated MP3 / FLAC / WAV files are separated as far as
they decode (with a warning naming both lengths), and file names that are not valid UTF-8 are read
and written (deepsep/audio.py)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import tone

import deepsep
from deepsep.audio import AudioReader, StemWriter
from deepsep.cli import main
from deepsep.options import OutputOptions

RATE = 8000


def run(*args: str) -> object:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def writable(fmt: str) -> bool:
    return fmt.upper() in sf.available_formats()


def truncated(tmp_path: Path, ext: str, keep: float, seconds: float = 2.0) -> tuple[Path, np.ndarray]:
    """A file of ``seconds`` of a tone, cut to ``keep`` of its bytes, and the whole file decoded
    (what the decodable part of the cut one must equal): (path, (time, channels))."""
    whole = tmp_path / f"whole.{ext}"
    sf.write(str(whole), tone(seconds, RATE, 1), RATE)
    data = whole.read_bytes()
    cut = tmp_path / f"cut.{ext}"
    cut.write_bytes(data[: int(len(data) * keep)])
    decoded, _ = sf.read(str(whole), dtype="float32", always_2d=True)
    return cut, decoded


def read_all(path: Path, block: int = 1000) -> tuple[np.ndarray, AudioReader]:
    with AudioReader(path) as reader:
        blocks = list(reader.blocks(block))
    return np.concatenate(blocks, axis=-1), reader


# (extension, fraction of the bytes kept): MP3 (libmpg123 stops short, no error) and FLAC (libsndfile
# raises "lost sync" where the data ends; 4096-frame FLAC frames, so 2 s at 8 kHz keep some whole ones)
CUTS = [
    pytest.param("mp3", 0.5, marks=pytest.mark.skipif(not writable("mp3"), reason="this libsndfile writes no MP3")),
    ("flac", 0.6),
]


@pytest.mark.parametrize("ext,keep", CUTS)
@pytest.mark.parametrize("block", [1000, 4096, 8192, 40000])
def test_truncated_file_reads_only_what_decodes(tmp_path, ext, keep, block):
    """The blocks hold what the decoder really returned (before: whole blocks of stale buffer
    contents up to the header's length for MP3, an error for FLAC), whatever the block size."""
    cut, decoded = truncated(tmp_path, ext, keep)
    promised = len(decoded)
    got, reader = read_all(cut, block)
    n = got.shape[-1]
    assert 0.2 * promised < n < 0.9 * promised
    np.testing.assert_allclose(got.T, decoded[:n], atol=1e-6)
    assert reader.info.frames == n  # what the reader announces is what it read
    assert len(reader.warnings) == 1, reader.warnings
    warning = reader.warnings[0]
    assert "truncated" in warning and f"promises {promised / RATE:.2f} s" in warning and f"{n / RATE:.2f} s" in warning


def test_truncated_wav_warns_alike(tmp_path):
    """The truncated WAV (whose header libsndfile corrects before reading) warns in the same words."""
    cut, decoded = truncated(tmp_path, "wav", 0.5, seconds=0.5)
    got, reader = read_all(cut)
    n = got.shape[-1]
    np.testing.assert_allclose(got.T, decoded[:n], atol=1e-6)
    assert reader.warnings == [f"{cut}: truncated: its header promises 0.50 s, the file holds {n / RATE:.2f} s; "
                               "separating what is there"]


@pytest.mark.parametrize("ext", ["wav", "flac", pytest.param("mp3", marks=pytest.mark.skipif(
    not writable("mp3"), reason="this libsndfile writes no MP3"))])
def test_whole_file_reads_all_without_warning(tmp_path, ext):
    path = tmp_path / f"whole.{ext}"
    sf.write(str(path), tone(0.5, RATE, 2), RATE)
    decoded, _ = sf.read(str(path), dtype="float32", always_2d=True)
    for block in (1000, 4000, 5000):  # 4000: the length a multiple of the block
        got, reader = read_all(path, block)
        np.testing.assert_allclose(got.T, decoded, atol=1e-6)  # MP3: float rounding varies with the read size
        assert got.shape == decoded.T.shape
        assert reader.warnings == [] and reader.info.frames == len(decoded)


def test_flac_that_decodes_nothing_is_an_error(tmp_path):
    cut, _ = truncated(tmp_path, "flac", 0.05)
    with pytest.raises(Exception, match="cannot decode"):
        read_all(cut)


@pytest.mark.parametrize("ext,keep", CUTS)
def test_truncated_file_is_separated_as_far_as_it_decodes(tmp_path, ext, keep):
    """End to end: exit 0, one warning with both lengths, stems as long as what decoded, adding up to it."""
    cut, decoded = truncated(tmp_path, ext, keep)
    res = run("separate", str(cut), "-m", "tiny-test", "-o", str(tmp_path / "o"), "--bits", "32", "--threads", "1")
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.output.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and f"promises {len(decoded) / RATE:.2f} s" in warnings[0], res.output
    stems = [sf.read(str(tmp_path / "o" / "cut" / f"{s}.wav"), dtype="float32", always_2d=True)[0]
             for s in ("voice", "noise")]
    n = len(stems[0])
    assert len(stems[1]) == n and 0.2 * len(decoded) < n < 0.9 * len(decoded)
    assert f"the file holds {n / RATE:.2f} s" in warnings[0] or f"stops at {n / RATE:.2f} s" in warnings[0]
    assert np.abs(stems[0] + stems[1] - decoded[:n]).max() < 1e-3


needs_bytes_names = pytest.mark.skipif(sys.platform in ("win32", "darwin"),
                                       reason="the file system stores only valid Unicode names")


@needs_bytes_names
def test_name_that_is_not_utf8_is_read_and_its_stems_written(tmp_path):
    """Read, separated and written through the file path of `deepsep separate` (separate_file: the
    reader, the hidden-file writers, their conversion and renames)."""
    src = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.wav"))  # Python holds the byte 0xe9 as a surrogate
    sf.write(os.fsencode(src), tone(0.3, RATE, 1), RATE)
    got, reader = read_all(src)
    assert got.shape == (1, int(0.3 * RATE)) and reader.warnings == []
    out = tmp_path / "o"
    result = deepsep.separate_file(deepsep.load_model("tiny-test"), src, out, OutputOptions(fmt="flac"))
    assert result.track == os.fsdecode(b"caf\xe9")
    folder = os.fsencode(out) + b"/caf\xe9"  # the track folder keeps the byte as it was
    assert sorted(os.listdir(folder)) == [b"noise.flac", b"voice.flac"]
    stem, rate = sf.read(folder + b"/voice.flac")
    assert rate == RATE and len(stem) == got.shape[-1]


@needs_bytes_names
@pytest.mark.parametrize("fmt", ["wav", "flac"])
def test_stem_writer_writes_under_a_name_that_is_not_utf8(tmp_path, fmt):
    folder = Path(os.fsdecode(bytes(tmp_path) + b"/d\xff"))
    folder.mkdir()
    writer = StemWriter(folder / "voice.out", RATE, 1)
    writer.write(np.full((1, 100), 0.25, np.float32))
    writer.convert(120, fmt.upper(), "PCM_16", 1.0, clamp=False)
    data, _ = sf.read(os.fsencode(writer.commit()))
    assert len(data) == 120 and np.allclose(data[:100], 0.25, atol=1e-4) and not data[100:].any()


@pytest.mark.skipif(shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None, reason="no ffmpeg here")
@needs_bytes_names
def test_ffmpeg_input_truncated_and_named_not_utf8(tmp_path):
    """The ffmpeg path (m4a): a name that is not UTF-8 reads; a cut file warns like the others."""
    wav = tmp_path / "t.wav"
    sf.write(str(wav), tone(2.0, RATE, 1), RATE)
    m4a = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.m4a"))
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", str(wav), "-c:a", "aac", "-movflags", "+faststart",
                    str(m4a)], check=True)
    got, reader = read_all(m4a)
    assert got.shape[-1] >= 2 * RATE and reader.warnings == []
    data = m4a.read_bytes()
    m4a.write_bytes(data[: len(data) // 2])
    got, reader = read_all(m4a)
    n = got.shape[-1]
    assert 0.2 * 2 * RATE < n < 0.9 * 2 * RATE
    assert len(reader.warnings) == 1 and "promises 2.00 s" in reader.warnings[0], reader.warnings


@pytest.mark.parametrize("ext", ["flac", "mp3"])
def test_a_truncated_file_reads_the_same_twice(tmp_path, ext):
    """A level pass reads a file before it is separated: the second reading gives the same samples."""
    cut, _ = truncated(tmp_path, ext, 0.5)
    reader = AudioReader(cut)
    first = np.concatenate(list(reader.blocks(1000)), axis=-1)
    second = np.concatenate(list(reader.blocks(1000)), axis=-1)
    np.testing.assert_array_equal(first, second)
    assert len(reader.warnings) == 1

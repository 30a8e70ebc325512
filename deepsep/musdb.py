"""MUSDB18-style music data: readers, a decode-once cache, a by-track validation split, augmentation.

Layouts read (each track -> stems ``drums, bass, other, vocals`` plus the mixture):

- native MUSDB18: ``<root>/<track>.stem.mp4``, five stereo AAC streams in the order mixture,
  drums, bass, other, vocals (decoded once with ffmpeg);
- track folders (MUSDB18-HQ, deepsep's ``../shared/data/music``): ``<root>/<track>/<stem>.<ext>``
  (or ``<root>/<split>/<track>/...``), one file per stem in any format libsndfile reads (WAV,
  FLAC, Ogg Vorbis/Opus, ...), ``mixture.<ext>`` optional;
- DSD100: ``<root>/Mixtures/<split>/<track>/mixture.wav`` and
  ``<root>/Sources/<split>/<track>/{bass,drums,other,vocals}.wav``.

Every stem is brought to the requested sample rate (soxr) and to stereo (mono duplicated), and a
track's stems are cut to the shortest. Without a mixture file the mixture is the sum of the stems.

**Unknown stems.** A track folder needs at least two of the four stems. A stem without a file
is *unknown*, not silent (in ``../shared/data/music/eif`` four songs have no bass stem: their
bass-register parts are inside ``other``): :attr:`TrackRef.known` is a boolean mask over
:data:`SOURCES`, :attr:`MusicDataset.known` holds it per track, and the decoded array has zeros
in an unknown stem's place (so the mixture is the sum of the known stems). Whatever uses the
stems as targets must read the mask: a loss must leave unknown stems out, not train them
towards silence. A ``.stem.mp4`` track knows all four.

Decoded tracks are cached as float16 ``.npy`` arrays (stems, channels, time) with the mixture
first, keyed by the files' paths, sizes and mtimes and the sample rate, so each file is decoded
once and training never decodes audio at a step. Augmentation helpers are pure functions on
numpy arrays of stems (sources, channels, time); the mixture is always the sum of the stems.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_EXTENSIONS, resample, sf_name
from .paths import cache_root

SAMPLE_RATE = 44100
#: where MUSDB18's training excerpts lie inside the shared data folder (``../shared/data``)
SHARED_MUSDB7 = Path("music", "musdb7", "train")
#: bytes read from each end of a source file for its cache key
_KEY_BYTES = 256 * 1024
#: stream order of a .stem.mp4 file
STEM_MP4_ORDER = ("mixture", "drums", "bass", "other", "vocals")
#: source order of deepsep's music model
SOURCES = ("vocals", "drums", "bass", "other")
#: a folder is a track when it holds at least this many of the SOURCES' stem files
MIN_STEMS = 2


@dataclass(frozen=True)
class TrackRef:
    """Where a track's audio lies: a .stem.mp4 file, or one file per stem (``mixture`` optional).

    ``files`` holds (name, path) pairs for the stems that the track has; a source of
    :data:`SOURCES` with no file is unknown (see :attr:`known`).
    """

    name: str
    stem_mp4: Path | None = None
    files: tuple[tuple[str, Path], ...] = ()

    @property
    def sources(self) -> tuple[str, ...]:
        """The sources (in :data:`SOURCES` order) that this track has audio for."""
        have = {n for n, _ in self.files}
        return SOURCES if self.stem_mp4 is not None else tuple(s for s in SOURCES if s in have)

    @property
    def known(self) -> np.ndarray:
        """(len(SOURCES),) bool, in :data:`SOURCES` order: True where the stem is known."""
        return np.array([s in self.sources for s in SOURCES])

    @property
    def location(self) -> Path:
        """The .stem.mp4 file, or the folder that holds the stem files."""
        return self.stem_mp4 if self.stem_mp4 is not None else dict(self.files)[self.sources[0]].parent

    def key(self) -> str:
        """A cache key that changes when the source files' contents change (each stem's name, size and
        first and last 256 KiB), and not when they are copied or moved elsewhere, mtimes and all."""
        files = [("stem.mp4", self.stem_mp4)] if self.stem_mp4 else list(self.files)
        h = hashlib.sha1()
        for stem, p in files:
            with open(p, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                h.update(f"{stem}|{size}|".encode())
                h.update(f.read(_KEY_BYTES))
                if size > 2 * _KEY_BYTES:
                    f.seek(size - _KEY_BYTES)
                h.update(f.read(_KEY_BYTES))
        return h.hexdigest()[:16]


def _stem_file(folder: Path, stem: str) -> Path | None:
    for ext in sorted(AUDIO_EXTENSIONS):
        p = folder / f"{stem}{ext}"
        if p.is_file():
            return p
    return None


def _folder_track(name: str, stem_dir: Path, mix_dir: Path) -> TrackRef | None:
    """The track whose stem files lie in ``stem_dir`` (its mixture file, if any, in ``mix_dir``),
    or None when fewer than :data:`MIN_STEMS` stems are there."""
    files = [(s, p) for s in SOURCES if (p := _stem_file(stem_dir, s)) is not None]
    if len(files) < MIN_STEMS:
        return None
    mix = _stem_file(mix_dir, "mixture")
    return TrackRef(name, files=tuple(files + ([("mixture", mix)] if mix else [])))


def find_tracks(root: str | Path) -> list[TrackRef]:
    """All tracks under ``root`` in any supported layout, sorted by name."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"music data folder not found: {root}")
    tracks: list[TrackRef | None] = []
    for p in sorted(root.glob("*.stem.mp4")):
        tracks.append(TrackRef(p.name[: -len(".stem.mp4")], stem_mp4=p))
    # DSD100: Mixtures/<split>/<track>/mixture.wav + Sources/<split>/<track>/<stem>.wav
    for mixdir in sorted(root.glob("Mixtures/*/*")):
        tracks.append(_folder_track(mixdir.name, root / "Sources" / mixdir.parent.name / mixdir.name, mixdir))
    # track folders: <track>/<stem>.<ext> (the root itself, or one split level such as train/)
    for d in sorted([root, *[p for p in root.iterdir() if p.is_dir()]]):
        tracks.append(_folder_track(d.name, d, d))
    seen: set[str] = set()
    out = []
    for t in sorted([t for t in tracks if t is not None], key=lambda t: t.name):
        if t.name not in seen:
            seen.add(t.name)
            out.append(t)
    return out


def solo_tracks(folder: str | Path, stem: str, max_seconds: float | None = None) -> list[TrackRef]:
    """Each audio file under ``folder`` (a cappella singing such as ``music/pjs`` for ``vocals``,
    drum renders for ``drums``; subfolders searched too) as a track whose only known stem is
    ``stem``, named by its path in the folder without extension, sorted by name; with
    ``max_seconds``, files drawn in a fixed pseudo-random order (the same every run; not the first
    by name, which in a corpus such as groove would all be one drummer's) up to that much audio."""
    root = Path(folder)
    files = {p.relative_to(root).with_suffix("").as_posix(): p for p in root.rglob("*")
             if p.suffix.lower() in AUDIO_EXTENSIONS and ".partial" not in p.name and p.is_file()}  # not half-written
    names = sorted(files)
    if max_seconds is not None:
        import soundfile as sf

        total, kept = 0.0, []
        for n in sorted(names, key=lambda n: hashlib.sha1(os.fsencode(files[n].relative_to(root).as_posix())).hexdigest()):
            if total >= max_seconds:
                break
            kept.append(n)
            total += sf.info(sf_name(files[n])).duration
        names = sorted(kept)
    return [TrackRef(n, files=((stem, files[n]),)) for n in names]


def active_rms(x: np.ndarray, frame: int = 4410, floor_db: float = -40.0) -> float:
    """RMS of a signal (..., time) over its frames within ``floor_db`` of its loudest (pauses left out)."""
    n = x.shape[-1] // frame
    if n == 0:
        return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))
    e = np.mean(np.square(x[..., : n * frame].reshape(-1, n, frame), dtype=np.float64), axis=(0, 2))
    loud = e[e >= e.max() * 10 ** (floor_db / 10)]
    return float(np.sqrt(loud.mean()))


def decode_stem_mp4(path: str | Path, stream: int, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """One stereo stream of a .stem.mp4 file as float32 (2, time), through ffmpeg."""
    cmd = ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-map", f"0:a:{stream}",
           "-f", "f32le", "-ac", "2", "-ar", str(sample_rate), "pipe:1"]
    try:
        res = subprocess.run(cmd, capture_output=True, check=True)
    except FileNotFoundError:
        raise RuntimeError("ffmpeg is needed to read .stem.mp4 files; install it (e.g. apt install ffmpeg)") from None
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"ffmpeg could not decode stream {stream} of {path}: "
                           f"{e.stderr.decode(errors='replace').strip()}") from None
    return np.frombuffer(res.stdout, dtype=np.float32).reshape(-1, 2).T.copy()


def _read_file(path: Path, sample_rate: int) -> np.ndarray:
    """A stem file (any format libsndfile reads) as float32 (2, time) at ``sample_rate``: resampled
    with soxr, mono duplicated to stereo, channels after the first two dropped."""
    import soundfile as sf

    x, sr = sf.read(sf_name(path), dtype="float32", always_2d=True)  # (time, channels)
    x = x.T
    if x.shape[0] == 1:
        x = np.repeat(x, 2, axis=0)
    return np.ascontiguousarray(resample(x[:2], sr, sample_rate), dtype=np.float32)


def decode_track(track: TrackRef, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """(5, 2, time) float32: mixture, then :data:`SOURCES` (vocals, drums, bass, other).

    Streams are cut to the shortest one; a missing mixture is the sum of the stems. An unknown
    stem (``track.known`` false) is zeros here: read the mask, not the zeros.
    """
    if track.stem_mp4 is not None:
        streams = {name: decode_stem_mp4(track.stem_mp4, i, sample_rate) for i, name in enumerate(STEM_MP4_ORDER)}
    else:
        streams = {name: _read_file(p, sample_rate) for name, p in track.files}
    n = min(x.shape[-1] for x in streams.values())
    stems = [streams[s][:, :n] if s in streams else np.zeros((2, n), np.float32) for s in SOURCES]
    mix = streams["mixture"][:, :n] if "mixture" in streams else np.sum(stems, axis=0)
    return np.stack([mix, *stems]).astype(np.float32)


def default_cache_dir() -> Path:
    """The decoded-track cache: ``musdb`` under the cache root (see :mod:`deepsep.datacache`)."""
    return cache_root() / "musdb"


def _cached(name: str, key: str, sample_rate: int, cache_dir: str | Path | None, decode) -> np.ndarray:
    """``decode()`` as float16, stored once in the cache under (name, key, rate) and then read from it."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    path = cache / f"{name.replace('/', '__')}.{key}.{sample_rate}.npy"
    if path.is_file():
        data = np.load(path, mmap_mode=None)
        with contextlib.suppress(OSError):  # a read-only cache is read all the same
            os.utime(path)  # its last use, for a size cap (least recently used go first)
        return data
    data16 = np.clip(decode(), -65000, 65000).astype(np.float16)
    cache.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.partial-{os.getpid()}.npy")  # runs side by side may decode the same track
    np.save(tmp, data16)
    os.replace(tmp, path)
    return data16


def cached_track(track: TrackRef, cache_dir: str | Path | None = None, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """The decoded track (5, 2, time) as float16, decoded once and then read from the cache."""
    return _cached(track.name, track.key(), sample_rate, cache_dir, lambda: decode_track(track, sample_rate))


def mixture_files(folder: str | Path, max_seconds: float | None = None) -> dict[str, Path]:
    """The audio files under ``folder`` (full mixes with no stems, e.g. ``music/songs``; subfolders
    searched too) by name (path in the folder without extension); with ``max_seconds``, as
    :func:`solo_tracks` draws them."""
    return {t.name: dict(t.files)["mixture"] for t in solo_tracks(folder, "mixture", max_seconds)}


def cached_mixture(path: str | Path, cache_dir: str | Path | None = None, sample_rate: int = SAMPLE_RATE,
                   name: str | None = None) -> np.ndarray:
    """An unlabelled full mix (2, time) as float16 at ``sample_rate``, decoded once then read from the cache."""
    ref = TrackRef(name or Path(path).stem, files=(("mixture", Path(path)),))
    return _cached(f"mix-{ref.name}", ref.key(), sample_rate, cache_dir, lambda: _read_file(Path(path), sample_rate))


def split_tracks(names: Sequence[str], n_valid: int = 10, seed: int = 42) -> tuple[list[str], list[str]]:
    """(train, valid) track names: ``n_valid`` tracks chosen by a seeded shuffle of the sorted names."""
    names = sorted(set(names))
    if not 0 <= n_valid < len(names) or (n_valid == 0 and not names):
        raise ValueError(f"cannot hold out {n_valid} of {len(names)} tracks")
    order = list(names)
    random.Random(seed).shuffle(order)
    valid = sorted(order[:n_valid])
    return [n for n in names if n not in set(valid)], valid


class MusicDataset:
    """Tracks in memory, split by track: each as its known stems only, float16 (known, 2, time) in
    :data:`SOURCES` order (:meth:`known_stems`; a one-stem track takes a fifth of what all five
    rows of the cache would), and its own mixture where it has one (a .stem.mp4's mixture stream).

    ``known[name]`` is the track's (len(SOURCES),) boolean mask of known stems (all True for
    MUSDB18); an unknown stem is zeros in :meth:`stems`. ``extra`` roots add training tracks only
    (named ``<folder>/<track>``, e.g. ``eif/<song>``), and so do the files of the ``solo``
    folders, (stem, folder) pairs (:func:`solo_tracks`: a cappella vocals, rendered drums; at most
    ``solo_minutes`` of each folder), each scaled to the median active level of that stem in the
    other tracks so that remixing puts it over accompaniment at a level songs have; the validation
    tracks come from ``root``, and so do ``n_select`` more held out of training (another seeded
    draw) to pick the best checkpoint with (:attr:`select_names`). ``mixtures`` folders hold unlabelled full mixes (at most
    ``mixture_minutes`` of each), in :attr:`songs` as (2, time) float16 arrays: the unlabelled
    side of the semi-supervised losses.
    """

    def __init__(self, root: str | Path, n_valid: int = 10, split_seed: int = 42,
                 cache_dir: str | Path | None = None, sample_rate: int = SAMPLE_RATE,
                 split_file: str | Path | None = None, progress: bool = False, extra: Sequence[str | Path] = (),
                 solo: Sequence[tuple[str, str | Path]] = (), solo_minutes: float | None = None,
                 mixtures: Sequence[str | Path] = (), mixture_minutes: float | None = None, n_select: int = 0):
        refs = find_tracks(root)
        if len(refs) < 2:
            raise ValueError(f"{root}: found {len(refs)} music tracks (need at least 2)")
        names = [t.name for t in refs]
        if split_file is not None and Path(split_file).is_file():
            saved = json.loads(Path(split_file).read_text())
            train, valid, select = saved["train"], saved["valid"], saved.get("select", [])
        else:
            train, valid = split_tracks(names, n_valid, split_seed)
            train, select = split_tracks(train, n_select, split_seed + 1) if n_select else (train, [])
            if split_file is not None:
                Path(split_file).parent.mkdir(parents=True, exist_ok=True)
                Path(split_file).write_text(json.dumps(
                    {"root": str(root), "seed": split_seed, "train": train, "valid": valid, "select": select}, indent=1))
        by_name = {t.name: t for t in refs}
        self.main_names = set(train)  # the training tracks of ``root`` (the rest are added sets)
        solo_names: dict[str, str] = {}  # one-stem track -> its stem
        limit = solo_minutes * 60 if solo_minutes else None
        folders = [(f, find_tracks(f), None) for f in extra] + [(f, solo_tracks(f, s, limit), s) for s, f in solo]
        for folder, found, stem in folders:
            if not found:
                raise ValueError(f"{folder}: found no {'audio files' if stem else 'music tracks'}")
            added = {f"{Path(folder).name}/{t.name}": t for t in found}
            by_name.update(added)
            train = [*train, *added]
            solo_names.update(dict.fromkeys(added, stem) if stem else {})
        self.train_names, self.valid_names = list(train), list(valid)
        #: tracks of ``root`` held out of training to pick the best checkpoint with, so that the
        #: validation tracks pick nothing (none: the validation tracks pick it)
        self.select_names = list(select)
        self.tracks: dict[str, np.ndarray] = {}  # known stems (known, 2, time)
        self.known: dict[str, np.ndarray] = {}
        self._mixtures: dict[str, np.ndarray] = {}  # the tracks' own mixtures, where they have one
        todo = [n for n in [*train, *valid, *select] if n in by_name]
        for i, n in enumerate(todo):
            ref = by_name[n]
            decoded = cached_track(ref, cache_dir, sample_rate)  # (5, 2, time): mixture, then SOURCES
            self.known[n] = ref.known
            self.tracks[n] = np.ascontiguousarray(decoded[1:][ref.known])
            if ref.stem_mp4 is not None or "mixture" in dict(ref.files):
                self._mixtures[n] = decoded[0].copy()
            if progress:
                print(f"\rdecoded {i + 1}/{len(todo)} tracks", end="", flush=True, file=sys.stderr)
        if progress:
            print(file=sys.stderr)
        self.songs: dict[str, np.ndarray] = {}
        for folder in mixtures:
            files = mixture_files(folder, mixture_minutes * 60 if mixture_minutes else None)
            if not files:
                raise ValueError(f"{folder}: found no audio files")
            for name, p in files.items():
                full = f"{Path(folder).name}/{name}"
                self.songs[full] = cached_mixture(p, cache_dir, sample_rate, full)
        self.sample_rate = sample_rate
        for stem in set(solo_names.values()):
            self._level_solo([n for n, s in solo_names.items() if s == stem], stem)

    def _level_solo(self, names: list[str], stem: str) -> None:
        """Scale one-stem tracks to the median active level of ``stem`` in the tracks with more stems."""
        i = SOURCES.index(stem)

        def level(n: str) -> float:
            return active_rms(self.tracks[n][int(self.known[n][:i].sum())].astype(np.float32))

        levels = [level(n) for n in self.tracks if n not in names and self.known[n][i] and self.known[n].sum() > 1]
        levels = [v for v in levels if v > 0]
        if not levels:
            return
        target = float(np.median(levels))
        for n in names:
            if (own := level(n)) > 0:
                self.tracks[n] = (self.tracks[n].astype(np.float32) * (target / own)).astype(np.float16)

    def known_stems(self, name: str) -> np.ndarray:
        """(known stems, 2, time) float16: the stems of a track that it has, in :data:`SOURCES` order."""
        return self.tracks[name]

    def stems(self, name: str) -> np.ndarray:
        """(sources=4, 2, time) float16 stems of a track (zeros where a stem is unknown): a new array."""
        return expand_stems(self.tracks[name], self.known[name])

    def unknown_stems(self) -> dict[str, list[str]]:
        """The tracks that miss some stems: name -> the unknown sources."""
        return {n: [s for s, k in zip(SOURCES, m) if not k] for n, m in self.known.items() if not m.all()}

    def mixture(self, name: str) -> np.ndarray:
        """(2, time) float16: the track's own mixture, else the sum of its stems."""
        if name in self._mixtures:
            return self._mixtures[name]
        return self.tracks[name].astype(np.float32).sum(axis=0).astype(np.float16)


def expand_stems(known_stems: np.ndarray, known: np.ndarray) -> np.ndarray:
    """(known, C, T) stems -> (len(known), C, T), zeros where ``known`` (bool) is False."""
    out = np.zeros((len(known), *known_stems.shape[1:]), dtype=known_stems.dtype)
    out[np.asarray(known, dtype=bool)] = known_stems
    return out


# ----------------------------------------------------------------------------- augmentation
# Pure functions: stems (sources, channels, time) in, new arrays out; mixture = stems.sum(0).


def random_excerpt(x: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random ``length``-sample excerpt (..., length) of x (..., time); zero-padded if short."""
    t = x.shape[-1]
    if t <= length:
        pad = [(0, 0)] * (x.ndim - 1) + [(0, length - t)]
        return np.pad(x, pad)
    start = int(rng.integers(0, t - length + 1))
    return x[..., start:start + length]


def apply_gains(stems: np.ndarray, gains: np.ndarray) -> np.ndarray:
    """Each stem times its gain: stems (S, C, T), gains (S,)."""
    return stems * np.asarray(gains, dtype=stems.dtype)[:, None, None]


def swap_channels(stems: np.ndarray, swap: np.ndarray) -> np.ndarray:
    """Left/right swapped for the stems where ``swap`` (S,) is true."""
    out = stems.copy()
    idx = np.asarray(swap, dtype=bool)
    out[idx] = out[idx, ::-1]
    return out


def flip_signs(stems: np.ndarray, flip: np.ndarray) -> np.ndarray:
    """Stems multiplied by -1 where ``flip`` (S,) is true."""
    return stems * np.where(np.asarray(flip, dtype=bool), -1.0, 1.0).astype(stems.dtype)[:, None, None]


#: the denominator of the playback rates that :func:`remix` draws with ``speed`` (steps of 2 %)
SPEED_STEPS = 50


def change_speed(stems: np.ndarray, up: int, down: int) -> np.ndarray:
    """Stems (..., time) played ``down / up`` times as fast (pitch and tempo together, as a tape
    at another speed): resampled by ``up / down``, (..., about time * up / down)."""
    flat = stems.reshape(-1, stems.shape[-1])
    out = resample(flat, down, up)
    return out.reshape(*stems.shape[:-1], out.shape[-1]).astype(stems.dtype, copy=False)


def remix(tracks: Sequence[np.ndarray], length: int, rng: np.random.Generator, *,
          known: Sequence[np.ndarray] | None = None, weights: np.ndarray | None = None,
          p_remix: float = 0.5, gain_db: tuple[float, float] = (-6.0, 3.0),
          p_swap: float = 0.5, p_flip: float = 0.5, p_silent: float = 0.0,
          speed: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """One augmented example: (stems (S, 2, length) float32, known (S,) bool); the mixture is the
    stems' sum.

    ``tracks`` are arrays (K, 2, time) of each track's known stems in source order; ``known``
    their (S,) masks of known stems (K = mask.sum(); default: all known, K = S), ``weights`` the
    chance of drawing each track (default: equal; e.g. in proportion to length). With probability
    ``p_remix`` each stem comes from an independently drawn track that knows it, at its own random
    offset (random remixing across tracks: every stem known), else all stems come from one track at
    one offset (that track's mask), drawn among the tracks that know two stems or more (a one-stem
    track, e.g. a cappella vocals, is only ever remixed over other tracks' stems, never an example
    on its own). Then per-stem random gains (dB, uniform in ``gain_db``), channel swaps and sign
    flips; ``p_silent`` silences a stem at random. ``speed`` > 0 plays the example at a random rate
    in 1 +- ``speed`` (steps of 1 / :data:`SPEED_STEPS`; one rate for all its stems, so a track's
    stems stay together; :func:`change_speed`), as Demucs's pitch/tempo augmentation multiplies
    few tracks.
    """
    masks = ([np.ones(tracks[0].shape[0], dtype=bool)] * len(tracks) if known is None
             else [np.asarray(k, dtype=bool) for k in known])
    n_src = len(masks[0])
    rows = [np.cumsum(m) - 1 for m in masks]  # a stem's row in its track's array

    def draw(candidates: np.ndarray) -> int:
        if weights is None:
            return int(candidates[int(rng.integers(len(candidates)))])
        p = weights[candidates] / weights[candidates].sum()
        return int(candidates[int(rng.choice(len(candidates), p=p))])

    spread = int(round(speed * SPEED_STEPS))
    down = SPEED_STEPS + (int(rng.integers(-spread, spread + 1)) if spread else 0)
    # samples to read for ``length`` after the rate change (and two to spare for rounding)
    read = length if down == SPEED_STEPS else -(-length * down // SPEED_STEPS) + 2

    def excerpt_of(s: int, i: int) -> np.ndarray:
        return random_excerpt(tracks[i][rows[i][s]], read, rng)

    whole = np.flatnonzero([m.sum() >= 2 for m in masks])
    if rng.random() < p_remix or len(whole) == 0:
        having = [np.flatnonzero([m[s] for m in masks]) for s in range(n_src)]
        mask = np.array([len(h) > 0 for h in having])
        stems = np.stack([excerpt_of(s, draw(having[s])) if mask[s]
                          else np.zeros((tracks[0].shape[1], read), dtype=np.float32) for s in range(n_src)])
    else:
        i = draw(whole)
        stems, mask = expand_stems(random_excerpt(tracks[i], read, rng), masks[i]), masks[i].copy()
    stems = stems.astype(np.float32)
    if down != SPEED_STEPS:
        stems = change_speed(stems, SPEED_STEPS, down)[..., :length]
    gains = 10 ** (rng.uniform(*gain_db, size=n_src) / 20)
    if p_silent:
        gains = gains * (rng.random(n_src) >= p_silent)
    stems = apply_gains(stems, gains)
    stems = swap_channels(stems, rng.random(n_src) < p_swap)
    stems = flip_signs(stems, rng.random(n_src) < p_flip)
    return np.ascontiguousarray(stems, dtype=np.float32), mask


def mixture_of(stems: np.ndarray) -> np.ndarray:
    """The mixture of stems (..., S, C, T) -> (..., C, T): their sum."""
    return stems.sum(axis=-3)

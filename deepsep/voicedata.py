"""Speech + noise data for the voice models.

Three things, all at one sample rate (8 kHz by default), mono:

* the original project's dataset layout: a folder of numbered subfolders (``0000``, ``0001``,
  ...), each with ``mix_snr_XX.wav`` (XX: the voice-to-noise ratio in dB, an integer, maybe
  negative), ``voice.wav`` and ``noise.wav``, where mixture = voice + noise
  (:func:`read_layout`, :func:`write_item`, :class:`MixtureFolder`);
* :func:`build_mixtures`, which writes such a folder from clean speech and noise folders,
  reproducibly from a seed;
* :class:`OnTheFlyMixer`, an endless stream of random speech excerpts mixed with random noise
  excerpts at random SNRs with gain augmentation, so a small corpus yields endless mixtures.

Signals are numpy float32 arrays of shape (time,) here; batches for the models are torch
tensors (batch, channels=1, time).
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from .audio import AUDIO_EXTENSIONS, sf_name
from .augment import band_limit, random_eq, reverberate

MIX_RE = re.compile(r"^mix_snr_(-?\d+)\.wav$")
#: the file rate whose round trip ``Augmentation.p_full_rate`` imitates (a 44.1/48 kHz file at the model's rate)
FULL_RATE = 48000
#: RMS level (dBFS) the clean speech is brought to before mixing in build_mixtures
SPEECH_LEVEL_DB = -25.0
#: the mixture's peak never exceeds this (everything is scaled together, keeping the SNR)
PEAK_LIMIT = 0.95
#: a clip whose RMS is below this (dBFS) counts as silent
SILENCE_DB = -60.0


# ---------------------------------------------------------------------------------------------
# reading audio
# ---------------------------------------------------------------------------------------------

def list_audio(folder: str | Path) -> list[Path]:
    """Audio files of a folder (recursively), sorted by path so that orders are reproducible."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder: {folder}")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS and p.is_file())


def load_mono(path: str | Path, sample_rate: int) -> np.ndarray:
    """A file as float32 mono (channels averaged) at ``sample_rate`` (soxr if it differs): (time,)."""
    data, sr = sf.read(sf_name(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    if sr != sample_rate:
        import soxr

        x = soxr.resample(x, sr, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(x, dtype=np.float32)


def load_corpus(folder: str | Path, sample_rate: int, min_seconds: float = 0.0) -> list[np.ndarray]:
    """Every audio file of a folder in memory, skipping silent and too-short ones."""
    out = []
    for p in list_audio(folder):
        x = load_mono(p, sample_rate)
        if len(x) < max(1, int(min_seconds * sample_rate)) or rms_db(x) < SILENCE_DB:
            continue
        out.append(x)
    if not out:
        raise ValueError(f"no usable audio in {folder}")
    return out


def rms_db(x: np.ndarray) -> float:
    """RMS level in dBFS of a signal (-inf-safe)."""
    return 10.0 * math.log10(float(np.mean(np.square(x, dtype=np.float64))) + 1e-20)


def snr_db(voice: np.ndarray, noise: np.ndarray) -> float:
    """Voice-to-noise energy ratio in dB."""
    ev = float(np.sum(np.square(voice, dtype=np.float64)))
    en = float(np.sum(np.square(noise, dtype=np.float64)))
    return 10.0 * math.log10((ev + 1e-20) / (en + 1e-20))


def loop_to(x: np.ndarray, length: int, start: int = 0) -> np.ndarray:
    """``length`` samples of ``x`` from ``start``, repeating ``x`` end to end when it is shorter."""
    if len(x) >= length + start:
        return x[start:start + length]
    reps = math.ceil((start + length) / len(x))
    return np.tile(x, reps)[start:start + length]


def reverberant_excerpt(x: np.ndarray, start: int, length: int, rir: np.ndarray) -> np.ndarray:
    """``length`` samples of ``x`` from ``start`` (looped as :func:`loop_to`) convolved with ``rir``,
    the samples before ``start`` included so that the excerpt carries their reverberant tail."""
    pre = min(start, len(rir))
    return reverberate(loop_to(x, length + pre, start - pre), rir)[pre:]


def mix_at_snr(voice: np.ndarray, noise: np.ndarray, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """Scale ``noise`` so that voice-to-noise is exactly ``snr`` dB; return (voice, scaled noise)."""
    ev = float(np.sum(np.square(voice, dtype=np.float64)))
    en = float(np.sum(np.square(noise, dtype=np.float64)))
    g = math.sqrt(ev / (en * 10.0 ** (snr / 10.0)))
    return voice, (noise * g).astype(np.float32)


def limit_peak(voice: np.ndarray, noise: np.ndarray, peak: float = PEAK_LIMIT) -> tuple[np.ndarray, np.ndarray]:
    """Scale voice and noise together so that neither they nor their sum exceed ``peak``."""
    m = max(float(np.max(np.abs(voice + noise))), float(np.max(np.abs(voice))), float(np.max(np.abs(noise))))
    if m > peak:
        g = peak / m
        voice, noise = voice * g, noise * g
    return voice.astype(np.float32), noise.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# the dataset layout
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LayoutItem:
    """One numbered subfolder of the layout."""

    folder: Path
    snr: int
    mix: Path
    voice: Path
    noise: Path


def read_layout(root: str | Path) -> list[LayoutItem]:
    """The items of a mixture folder, in subfolder order.

    A subfolder counts when it holds exactly one ``mix_snr_XX.wav`` plus ``voice.wav`` and
    ``noise.wav``; anything else is an error (a half-written dataset should not train silently).
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"not a folder: {root}")
    items = []
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit()):
        mixes = [p for p in sub.iterdir() if MIX_RE.match(p.name)]
        if len(mixes) != 1:
            raise ValueError(f"{sub}: expected one mix_snr_XX.wav, found {len(mixes)}")
        voice, noise = sub / "voice.wav", sub / "noise.wav"
        for p in (voice, noise):
            if not p.is_file():
                raise ValueError(f"{sub}: missing {p.name}")
        snr = int(MIX_RE.match(mixes[0].name).group(1))  # type: ignore[union-attr]
        items.append(LayoutItem(sub, snr, mixes[0], voice, noise))
    if not items:
        raise ValueError(f"{root}: no numbered subfolders with mix_snr_XX.wav, voice.wav, noise.wav")
    return items


def write_item(root: str | Path, index: int, voice: np.ndarray, noise: np.ndarray, snr: int,
               sample_rate: int, subtype: str = "FLOAT") -> Path:
    """Write one numbered subfolder (``mix = voice + noise``); float wav keeps the sum exact."""
    sub = Path(root) / f"{index:04d}"
    sub.mkdir(parents=True, exist_ok=True)
    for old in sub.glob("mix_snr_*.wav"):
        old.unlink()
    sf.write(sf_name(sub / "voice.wav"), voice, sample_rate, subtype=subtype)
    sf.write(sf_name(sub / "noise.wav"), noise, sample_rate, subtype=subtype)
    sf.write(sf_name(sub / f"mix_snr_{int(snr)}.wav"), voice + noise, sample_rate, subtype=subtype)
    return sub


def load_layout(root: str | Path, sample_rate: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, int]]:
    """Every item of a mixture folder in memory: (mix, voice, noise, snr), each (time,)."""
    return [
        (load_mono(it.mix, sample_rate), load_mono(it.voice, sample_rate), load_mono(it.noise, sample_rate), it.snr)
        for it in read_layout(root)
    ]


class MixtureFolder(torch.utils.data.Dataset):
    """A mixture folder as a torch Dataset of (mix, voice, noise) tensors, each (channels=1, time).

    With ``segment`` (samples) each item is a random crop of that length (zero-padded when the
    item is shorter), drawn with ``generator``; without, items are whole.
    """

    def __init__(self, root: str | Path, sample_rate: int = 8000, segment: int | None = None,
                 generator: torch.Generator | None = None):
        self.items = load_layout(root, sample_rate)
        self.segment = segment
        self.generator = generator

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        mix, voice, noise, _ = self.items[i]
        if self.segment is not None:
            n = len(mix)
            if n >= self.segment:
                s = int(torch.randint(0, n - self.segment + 1, (1,), generator=self.generator))
                mix, voice, noise = (a[s:s + self.segment] for a in (mix, voice, noise))
            else:
                pad = self.segment - n
                mix, voice, noise = (np.pad(a, (0, pad)) for a in (mix, voice, noise))
        return tuple(torch.from_numpy(np.ascontiguousarray(a)).unsqueeze(0) for a in (mix, voice, noise))  # type: ignore[return-value]


# ---------------------------------------------------------------------------------------------
# building a mixture folder
# ---------------------------------------------------------------------------------------------

def _active_start(rng: np.random.Generator, x: np.ndarray, length: int, tries: int = 10) -> int:
    """A random start of a ``length`` excerpt of ``x`` that is not silent (best of a few tries)."""
    if len(x) <= length:
        return 0
    best, best_db = 0, -1e9
    for _ in range(tries):
        s = int(rng.integers(0, len(x) - length + 1))
        db = rms_db(x[s:s + length])
        if db > SILENCE_DB + 20:
            return s
        if db > best_db:
            best, best_db = s, db
    return best


def build_mixtures(
    speech_dir: str | Path,
    noise_dir: str | Path,
    out_dir: str | Path,
    count: int,
    clip_seconds: float = 4.0,
    snrs: Sequence[int] | tuple[int, int] = (-5, 0, 5, 10),
    sample_rate: int = 8000,
    seed: int = 0,
    snr_range: bool = False,
    subtype: str = "FLOAT",
    rirs: Sequence[np.ndarray] = (),
    p_reverb: float = 0.0,
) -> list[LayoutItem]:
    """Write ``count`` mixtures in the dataset layout into ``out_dir`` and return its items.

    ``snrs`` is a list of integer SNRs (dB) used in turn (item i gets ``snrs[i % len]``), or, with
    ``snr_range=True``, a ``(low, high)`` pair from which integer SNRs are drawn uniformly. Speech
    files are used in turn too (item i uses file ``(i // len(snrs)) % n`` for a list, so every file
    appears at every SNR), each excerpt at a random non-silent offset; noise files are drawn at
    random, silent ones skipped, short ones looped to the clip length. Loudness: the speech
    excerpt is set to -25 dBFS RMS, the noise is scaled to give exactly the SNR, then voice and
    noise are scaled together so that the mixture peaks at most at 0.95 (no clipping, SNR kept).
    With ``rirs``, an item's speech is reverberated with a random one of them with probability
    ``p_reverb`` (the reverberant speech is its ``voice.wav``). The same arguments and seed give
    the same files.
    """
    rng = np.random.default_rng(seed)
    speech_files = list_audio(speech_dir)
    noise_files = list_audio(noise_dir)
    if not speech_files:
        raise ValueError(f"no audio files in {speech_dir}")
    if not noise_files:
        raise ValueError(f"no audio files in {noise_dir}")
    length = int(round(clip_seconds * sample_rate))
    snr_list = [int(s) for s in snrs]
    if snr_range and len(snr_list) != 2:
        raise ValueError("snr_range needs (low, high)")
    load = functools.cache(functools.partial(load_mono, sample_rate=sample_rate))  # each file read once
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    items = []
    for i in range(count):
        if snr_range:
            snr = int(rng.integers(snr_list[0], snr_list[1] + 1))
            sp = speech_files[i % len(speech_files)]
        else:
            snr = snr_list[i % len(snr_list)]
            sp = speech_files[(i // len(snr_list)) % len(speech_files)]
        voice = _speech_excerpt(rng, load(sp), length, rirs, p_reverb, sp)
        noise = _noise_excerpt(rng, noise_files, load, length, noise_dir)
        voice, noise = limit_peak(*mix_at_snr(voice, noise, snr))
        sub = write_item(out, i, voice, noise, snr, sample_rate, subtype)
        items.append(LayoutItem(sub, snr, sub / f"mix_snr_{snr}.wav", sub / "voice.wav", sub / "noise.wav"))
    return items


def _speech_excerpt(rng: np.random.Generator, speech: np.ndarray, length: int, rirs: Sequence[np.ndarray],
                    p_reverb: float, name: Path) -> np.ndarray:
    """A ``length`` excerpt of ``speech`` (time,) at a random non-silent offset, reverberated with
    a random one of ``rirs`` with probability ``p_reverb``, at SPEECH_LEVEL_DB RMS: (length,)
    float32; a ValueError when it is silent (``name``: the file, for the message)."""
    start = _active_start(rng, speech, length)
    if rirs and rng.random() < p_reverb:
        voice = reverberant_excerpt(speech, start, length, rirs[int(rng.integers(0, len(rirs)))])
    else:
        voice = loop_to(speech, length, start)
    if rms_db(voice) < SILENCE_DB:
        raise ValueError(f"{name} is silent")
    return (voice * 10.0 ** ((SPEECH_LEVEL_DB - rms_db(voice)) / 20.0)).astype(np.float32)


def _noise_excerpt(rng: np.random.Generator, files: Sequence[Path], load: Callable[[Path], np.ndarray], length: int,
                   folder: str | Path) -> np.ndarray:
    """A non-silent ``length`` excerpt, (length,), of a random one of the noise ``files`` (read
    with ``load``, (time,)): silent files skipped, short ones looped; a ValueError (naming
    ``folder``) after 1000 silent draws."""
    for _ in range(1000):
        nz = load(files[int(rng.integers(0, len(files)))])
        if rms_db(nz) < SILENCE_DB:
            continue
        if len(nz) > length:
            noise = nz[_active_start(rng, nz, length):][:length]
        else:
            noise = loop_to(nz, length, int(rng.integers(0, len(nz))))
        if rms_db(noise) >= SILENCE_DB:
            return noise
    raise ValueError(f"no non-silent noise found in {folder}")


# ---------------------------------------------------------------------------------------------
# on-the-fly mixing
# ---------------------------------------------------------------------------------------------

@dataclass
class Augmentation:
    """What :class:`OnTheFlyMixer` does to each example beyond mixing (all off by default).

    ``rirs``: room impulse responses, one convolved with the speech with probability
    ``p_reverb`` (the reverberant speech is the voice target); ``p_eq``: a random EQ on the
    voice and, independently, on the noise; ``p_band_limit``: voice and noise both limited to
    the band of a recording at one of ``band_limit_rates`` (Hz); in such an example the voice and,
    independently, the noise come with probability ``p_narrow`` from ``narrow_speech`` and
    ``narrow_noise`` (narrow-band corpora, e.g. the 8 kHz ones, at ``sample_rate``: more speakers
    and noises, shown only where the model must not expect a high band; drawn after the EQ and the
    second noise, so not given those). ``p_full_rate``: voice and noise both resampled to
    :data:`FULL_RATE` and back, as the model hears a 44.1/48 kHz file (the top few hundred Hz of
    its band cut by the resampler). ``sample_rate``: the data's.
    """

    sample_rate: int = 8000
    rirs: list[np.ndarray] = field(default_factory=list)
    p_reverb: float = 0.0
    p_eq: float = 0.0
    p_band_limit: float = 0.0
    band_limit_rates: tuple[int, ...] = (8000,)
    narrow_speech: list[np.ndarray] = field(default_factory=list)
    narrow_noise: list[np.ndarray] = field(default_factory=list)
    p_narrow: float = 0.5
    p_full_rate: float = 0.0


def _by_length(corpus: list[np.ndarray]) -> np.ndarray:
    """The chance of drawing each file of a corpus: in proportion to its length."""
    lens = np.array([len(x) for x in corpus], dtype=np.float64)
    return lens / lens.sum() if len(lens) else lens


class OnTheFlyMixer(torch.utils.data.IterableDataset):
    """Endless random mixtures from in-memory speech and noise corpora.

    Each example: a random speech excerpt (file chosen in proportion to its length, a
    non-silent offset), a random noise excerpt (looped when shorter, silent ones redrawn, a
    random gain-varied concatenation of two clips with probability ``p_two_noises``), an SNR drawn
    uniformly from ``snr_range`` dB, then a random overall gain (``gain_db`` range, relative to
    -25 dBFS speech) and peak limiting of the pair; ``augment`` adds reverberation, EQ and band
    limiting (:class:`Augmentation`). Yields (mix, voice, noise), each a float32 tensor
    (channels=1, time=segment), mix = voice + noise exactly.
    """

    def __init__(self, speech: list[np.ndarray], noise: list[np.ndarray], segment: int,
                 snr_range: tuple[float, float] = (-5.0, 10.0), gain_db: tuple[float, float] = (-15.0, 10.0),
                 seed: int = 0, p_two_noises: float = 0.3, augment: Augmentation | None = None):
        self.speech, self.noise = speech, noise
        self.segment = segment
        self.snr_range, self.gain_db = snr_range, gain_db
        self.p_two_noises = p_two_noises
        self.augment = augment or Augmentation()
        self.rng = np.random.default_rng(seed)
        self.speech_p = _by_length(speech)
        self.narrow_p = _by_length(self.augment.narrow_speech)

    @classmethod
    def from_folders(cls, speech_dir: str | Path, noise_dir: str | Path, sample_rate: int, segment: int,
                     **kw: Any) -> OnTheFlyMixer:
        return cls(load_corpus(speech_dir, sample_rate, 0.5), load_corpus(noise_dir, sample_rate), segment, **kw)

    def state(self) -> Mapping[str, Any]:
        """The random state as plain data (for checkpoints)."""
        return self.rng.bit_generator.state

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.rng.bit_generator.state = state

    def _noise(self, n: int, corpus: list[np.ndarray] | None = None) -> np.ndarray:
        """A noise excerpt of ``n`` samples from ``corpus`` (default: the noise corpus), not silent."""
        rng, corpus = self.rng, corpus or self.noise
        for _ in range(100):
            nz = corpus[int(rng.integers(0, len(corpus)))]
            x = loop_to(nz, n, int(rng.integers(0, len(nz))) if len(nz) < n else int(rng.integers(0, len(nz) - n + 1)))
            if rms_db(x) > SILENCE_DB:
                return x
        return x  # pragma: no cover - only with an almost silent noise corpus

    def _voice(self, n: int, narrow: bool = False) -> np.ndarray:
        """A speech excerpt of ``n`` samples (of the narrow-band corpus with ``narrow``),
        reverberated with probability ``p_reverb`` (the excerpt is convolved with the speech
        before it, so the reverberation has its tail)."""
        rng, aug = self.rng, self.augment
        corpus, p = (aug.narrow_speech, self.narrow_p) if narrow else (self.speech, self.speech_p)
        sp = corpus[int(rng.choice(len(corpus), p=p))]
        start = _active_start(rng, sp, n)
        if aug.rirs and rng.random() < aug.p_reverb:
            return reverberant_excerpt(sp, start, n, aug.rirs[int(rng.integers(0, len(aug.rirs)))])
        return loop_to(sp, n, start)

    def example(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rng, n, aug = self.rng, self.segment, self.augment
        voice = self._voice(n)
        noise = self._noise(n)
        if rng.random() < self.p_two_noises:
            other = self._noise(n) * 10.0 ** (rng.uniform(-10, 0) / 20.0)
            noise = noise + other * math.sqrt(np.mean(noise ** 2) / (np.mean(other ** 2) + 1e-12))
        if aug.p_eq:
            if rng.random() < aug.p_eq:
                voice = random_eq(voice, rng, aug.sample_rate)
            if rng.random() < aug.p_eq:
                noise = random_eq(noise, rng, aug.sample_rate)
        if aug.p_band_limit and rng.random() < aug.p_band_limit:
            rate = int(aug.band_limit_rates[int(rng.integers(0, len(aug.band_limit_rates)))])
            if aug.narrow_speech and rng.random() < aug.p_narrow:
                voice = self._voice(n, narrow=True)
            if aug.narrow_noise and rng.random() < aug.p_narrow:
                noise = self._noise(n, aug.narrow_noise)
            voice, noise = band_limit(voice, aug.sample_rate, rate), band_limit(noise, aug.sample_rate, rate)
        elif aug.p_full_rate and rng.random() < aug.p_full_rate:
            voice, noise = band_limit(voice, aug.sample_rate, FULL_RATE), band_limit(noise, aug.sample_rate, FULL_RATE)
        if rms_db(voice) < SILENCE_DB:  # pragma: no cover - a silent excerpt of a non-silent file
            voice = loop_to(self.speech[0], n)
        voice = voice * 10.0 ** ((SPEECH_LEVEL_DB - rms_db(voice)) / 20.0)
        snr = rng.uniform(*self.snr_range)
        voice, noise = mix_at_snr(voice.astype(np.float32), noise.astype(np.float32), snr)
        g = 10.0 ** (rng.uniform(*self.gain_db) / 20.0)
        voice, noise = limit_peak(voice * g, noise * g)
        v, z = torch.from_numpy(voice).unsqueeze(0), torch.from_numpy(noise).unsqueeze(0)
        return v + z, v, z

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(mix, voice, noise), each (batch, channels=1, time)."""
        ex = [self.example() for _ in range(size)]
        return tuple(torch.stack(t) for t in zip(*ex))  # type: ignore[return-value]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        while True:
            yield self.example()

"""What should happen to the band above 4 kHz when an 8 kHz voice model separates a wide-band file?

deepsep's voice models run at 8 kHz. On a 44.1 kHz file, :mod:`deepsep.api` gives everything
the stems miss (the band above 4 kHz) to the noise, so the stems add up to the input and the
voice is band-limited. This benchmark measures whether a time-varying share of that band could
do better, on wide-band mixtures made here:

* speech: espeak-ng sentences (synthetic, but with fricatives up to 11 kHz; 22.05 kHz, resampled);
* noise: pink and white noise (seeded), and the drums and the "other" stems of two MUSDB18
  tracks (real wide-band recordings, channels averaged), at 0 and 5 dB SNR.

The voice model runs at 8 kHz (:func:`deepsep.engine.separate`); its stems are resampled to
44.1 kHz and the residual ``r = mix - voice - noise`` (the band above 4 kHz) is given to the
voice with a gain per 10 ms frame (linearly interpolated), by one of these rules:

* ``to noise``: 0 (what deepsep does);
* ``share``:    the voice's share of the stems' energy at the top of the model's band (squared
                second difference, 20 ms windows);
* ``fitted``:   the same with the two stems' energies weighted by non-negative least squares
                fits to the residual's energy per frame over the file;
* ``oracle``:   the true voice's share of the band's energy (needs the references: an upper
                bound for any gain per frame).

Scores (dB, mean over items): SI-SDR of the voice over the whole band, and the SDR of the voice
above 4.5 kHz (0 dB when that band is empty).

    apt-get install espeak-ng
    python benchmarks/wideband_voice.py -m voice-unet
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import torch

from deepsep.engine import separate
from deepsep.metrics import si_sdr
from deepsep.musdb import SOURCES, decode_track, find_tracks
from deepsep.train.music import MUSIC_DATA
from deepsep.weights import get_model

SENTENCES = [
    ("en-us", "She sells sea shells by the sea shore, and the shells she sells are surely seashells."),
    ("en-gb", "Six thick thistle sticks. The sixth sick sheikh's sixth sheep is sick."),
    ("en-us+f3", "Please call Stella and ask her to bring these things with her from the store."),
    ("en-gb+m3", "The quick brown fox jumps over the lazy dog, just as it did yesterday."),
    ("en-us+m1", "Fresh fish is served on Fridays, with a choice of chips or a salad."),
    ("en-us+f2", "Whispering voices and hissing steam filled the station at six o'clock."),
]
TRACKS = ["Music Delta - Gospel", "Night Panther - Fire"]
RATE = 44100
EDGE = 4500.0


def speech(voice: str, text: str) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        x, sr = sf.read(str(wav), dtype="float32")
    return soxr.resample(x, sr, RATE).astype(np.float32)


def noises(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    white = rng.standard_normal(n)
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)
    out = {"white": white, "pink": pink}
    tracks = {t.name: t for t in find_tracks(MUSIC_DATA)} if MUSIC_DATA.is_dir() else {}
    for name in TRACKS:
        if name not in tracks:
            continue
        stems = decode_track(tracks[name], RATE)  # mixture, then SOURCES
        for stem in ("drums", "other"):
            x = stems[1 + SOURCES.index(stem)].mean(axis=0)
            out[f"{stem}:{name.split(' - ')[0]}"] = np.resize(x, n)
    return {k: v.astype(np.float32) for k, v in out.items()}


def high_band(x: np.ndarray) -> np.ndarray:
    f = np.fft.rfft(x)
    f[np.fft.rfftfreq(x.size, 1 / RATE) < EDGE] = 0
    return np.fft.irfft(f, x.size)


def sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(ref**2) / max(np.sum((ref - est) ** 2), 1e-20)))


FRAME = 0.01


def frame_energy(x: np.ndarray, rate: int) -> np.ndarray:
    """Mean energy of ``x`` (n,) in centred windows of 2 frames, one per 10-ms frame: (frames,)."""
    hop = int(FRAME * rate)
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    mid = np.arange(x.size // hop) * hop + hop // 2
    lo, hi = np.clip(mid - hop, 0, x.size), np.clip(mid + hop, 0, x.size)
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def frame_gain(g: np.ndarray, n: int) -> np.ndarray:
    """Per-frame gains (frames,) -> per-sample gains (n,) at RATE, linearly interpolated."""
    hop = int(FRAME * RATE)
    return np.interp(np.arange(n), np.arange(g.size) * hop + hop // 2, g)


def gains(stems8: np.ndarray, rate8: int, residual: np.ndarray, ref_hb: np.ndarray, noise_hb: np.ndarray) -> dict[str, np.ndarray]:
    """The voice's gain per frame on the residual, by each rule; stems8 (2, n8) at the model rate."""
    from scipy.optimize import nnls

    top = [np.pad(np.diff(s, 2), (1, 1)) for s in stems8]  # second difference: weighs the top of the band
    ev, en = (np.sqrt(frame_energy(t, rate8)) for t in top)
    er = frame_energy(residual, RATE)
    m = min(ev.size, er.size)
    ev, en, er = ev[:m], en[:m], er[:m]
    (av, an), _ = nnls(np.stack([ev, en], 1), er)
    tv, tn = frame_energy(ref_hb, RATE)[:m], frame_energy(noise_hb, RATE)[:m]
    return {
        "to noise": np.zeros(m),
        "share": ev / (ev + en + 1e-12),
        "fitted": av * ev / (av * ev + an * en + 1e-12),
        "oracle": tv / (tv + tn + 1e-12),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", action="append", default=None)
    ap.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0])
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    voices = [speech(v, t) for v, t in SENTENCES]
    rows: dict[tuple[str, str, str], list[tuple[float, float]]] = {}
    for name in args.model or ["voice-unet"]:
        model = get_model(name)
        sr = model.sample_rate
        for v in voices:
            for kind, noise in noises(v.size, rng).items():
                for snr in args.snr:
                    noise = noise * np.sqrt(np.sum(v**2) / np.sum(noise**2)) * 10 ** (-snr / 20)
                    peak = np.abs(v + noise).max() / 0.9
                    ref, noise = v / peak, noise / peak
                    mix = ref + noise
                    low = torch.from_numpy(soxr.resample(mix, RATE, sr).astype(np.float32))[None]
                    stems8 = separate(model, low)[:, 0].numpy()  # (2, n8)
                    up = np.stack([soxr.resample(s, sr, RATE)[: mix.size] for s in stems8])
                    up = np.pad(up, ((0, 0), (0, mix.size - up.shape[1])))
                    residual = mix - up.sum(axis=0)
                    ref_hb = high_band(ref)
                    for rule, g in gains(stems8, sr, residual, ref_hb, high_band(noise)).items():
                        est = up[0] + frame_gain(g, mix.size) * residual
                        full = float(si_sdr(torch.from_numpy(est), torch.from_numpy(ref.astype(np.float64))))
                        rows.setdefault((name, kind.split(":")[0], rule), []).append((full, sdr_db(high_band(est), ref_hb)))
    print("| model | noise | rule | voice SI-SDR | voice SDR above 4.5 kHz |")
    print("|---|---|---|---|---|")
    for (name, kind, rule), vals in sorted(rows.items()):
        a = np.array(vals)
        print(f"| {name} | {kind} | {rule} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} |")
    for name in sorted({k[0] for k in rows}):
        for rule in ("to noise", "share", "fitted", "oracle"):
            a = np.concatenate([np.array(v) for k, v in rows.items() if k[0] == name and k[2] == rule])
            print(f"| {name} | all ({len(a)}) | {rule} | {a[:, 0].mean():.2f} | {a[:, 1].mean():.2f} |")


if __name__ == "__main__":
    main()

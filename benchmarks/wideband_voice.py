"""What should happen to the band above a voice model's Nyquist frequency on a wide-band file?

deepsep's voice models run at 8 kHz or 16 kHz. On a 44.1 or 48 kHz file, :mod:`deepsep.api`
gives everything the stems miss (the band above the model's Nyquist frequency, the *edge*: 4 kHz
for an 8 kHz model, 8 kHz for a 16 kHz one) to the noise, so the stems add up to the input and
the voice is band-limited. This benchmark measures whether a time-varying share of that band
could do better, on wide-band mixtures made here, at 44.1 and 48 kHz, 0 and 5 dB SNR:

* speech: espeak-ng sentences (synthetic, but with fricatives up to 11 kHz: espeak-ng writes
  22.05 kHz, resampled); with ``--sung N`` also N excerpts of PJS a cappella songs (real 48 kHz
  recordings of a sung voice, energy up to 20 kHz; ``../shared/data`` holds no full-band
  *speech*: its wide-band speech is 16 kHz);
* noise: real 48 kHz recordings of ``../shared/data/wideband/noise/valid`` chosen for their
  content above 12 kHz (:data:`REAL_NOISES`; their share of energy above 12 kHz is printed),
  pink and white noise (seeded), and the drums and "other" stems of two MUSDB18 tracks
  (``../shared/data/music/musdb7``, channels averaged; left out when that folder is missing).

The voice model runs at its own rate (:func:`deepsep.engine.separate`); its stems are resampled
to the file's rate and the residual ``r = mix - voice - noise`` (the band above the edge) is
given to the voice with a gain per 10 ms frame (linearly interpolated), by one of these rules:

* ``to noise``: 0 (what deepsep does);
* ``share``:    the voice's share of the stems' energy at the top of the model's band (squared
                second difference at the model's rate, which weighs the band just below the
                edge; 20 ms windows);
* ``fitted``:   the same with the two stems' energies weighted by non-negative least squares
                fits to the residual's energy per frame over the file;
* ``oracle``:   the true voice's share of the band's energy (needs the references: an upper
                bound for any gain per frame).

Scores (dB, mean over items, per noise kind and over all items, and over all items per file
rate): SI-SDR of the voice over the whole band, and the SDR of the voice above the edge + 500 Hz
(above the resamplers' transition band; 0 dB when the voice has nothing there).

    apt-get install espeak-ng
    nice -n 10 python benchmarks/wideband_voice.py -m voice-unet --threads 1
    nice -n 10 python benchmarks/wideband_voice.py -m voice16-unet -m voice16-convtasnet --threads 1
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from deepsep.audio import resample
from deepsep.engine import separate
from deepsep.metrics import si_sdr
from deepsep.musdb import SHARED_MUSDB7, SOURCES, decode_track, find_tracks
from deepsep.paths import data_root
from deepsep.weights import alias_for_rate, get_model

SENTENCES = [
    ("en-us", "She sells sea shells by the sea shore, and the shells she sells are surely seashells."),
    ("en-gb", "Six thick thistle sticks. The sixth sick sheikh's sixth sheep is sick."),
    ("en-us+f3", "Please call Stella and ask her to bring these things with her from the store."),
    ("en-gb+m3", "The quick brown fox jumps over the lazy dog, just as it did yesterday."),
    ("en-us+m1", "Fresh fish is served on Fridays, with a choice of chips or a salad."),
    ("en-us+f2", "Whispering voices and hissing steam filled the station at six o'clock."),
]
#: real noise (48 kHz Opus files of ../shared/data/wideband/noise/valid): one recording per kind,
#: each with real content above 12 kHz (share of its energy above 12 kHz, measured with a Welch
#: spectrum: rain -13, fire -12, helicopter -19, chainsaw -25, clock -18, waves -26 dB; recordings
#: from 16 or 24 kHz sources, or below -30 dB, were left out, and so were kinds with voices in them:
#: coffee shop, supermarket)
DATA = data_root()  # --data-root's default: $DEEPSEP_DATA, else ../shared/data
MUSIC_DATA = DATA / SHARED_MUSDB7
NOISE_DIR = DATA / "wideband" / "noise" / "valid"
REAL_NOISES = {
    "rain": "esc10_rain-2-82367-A_0.opus",
    "fire": "esc10_fire-crackling-2-65747-A_0.opus",
    "helicopter": "esc10_helicopter-1-172649-C_0.opus",
    "chainsaw": "esc10_chainsaw-2-50667-A_0.opus",
    "clock": "esc10_clock-tick-3-150363-A_0.opus",
    "waves": "moodist_top-waves_0.opus",
}
SUNG_DIR = DATA / "music" / "pjs"
TRACKS = ["Music Delta - Gospel", "Night Panther - Fire"]
BASE = 48000  # the rate items are built at; the 44.1 kHz items are resampled from it
RATES = (44100, 48000)
RULES = ("to noise", "share", "fitted", "oracle")
FRAME = 0.01
ITEM_SECONDS = 5.0  # sung excerpts
MARGIN = 500.0  # Hz above the edge where the high-band score starts


def espeak(voice: str, text: str) -> np.ndarray:
    """An espeak-ng sentence at :data:`BASE` Hz, (n,) float32."""
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "s.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(wav), text], check=True)
        x, sr = sf.read(str(wav), dtype="float32")
    return resample(x[None], sr, BASE)[0].astype(np.float32)


def read_mono(path: Path) -> np.ndarray:
    """A file's channels averaged, at :data:`BASE` Hz, (n,) float32."""
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return resample(x.mean(axis=1)[None], sr, BASE)[0].astype(np.float32)


def loudest(x: np.ndarray, n: int, rate: int) -> np.ndarray:
    """The n-sample excerpt of x with the most energy (searched on a 0.5 s grid)."""
    if x.size <= n:
        return x
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    starts = np.arange(0, x.size - n + 1, rate // 2)
    i = starts[np.argmax(c[starts + n] - c[starts])]
    return x[i : i + n]


def fit_length(x: np.ndarray, n: int, rate: int, offset: float = 0.0) -> np.ndarray:
    """x cut to n samples from a start at ``offset`` (0..1) of the free room, or looped with
    50 ms equal-power crossfades when shorter (no clicks, no gap)."""
    if x.size >= n:
        start = int(offset * (x.size - n))
        return x[start : start + n]
    fade = min(int(0.05 * rate), x.size // 4)
    t = (np.arange(fade) + 0.5) / fade
    fin, fout = np.sin(0.5 * np.pi * t), np.cos(0.5 * np.pi * t)
    out = x.astype(np.float64)
    while out.size < n:
        out = np.concatenate([out[:-fade], out[-fade:] * fout + x[:fade] * fin, x[fade:]])
    return out[:n].astype(np.float32)


def pink_white(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    white = rng.standard_normal(n)
    pink = np.fft.irfft(np.fft.rfft(rng.standard_normal(n)) / np.sqrt(np.arange(1, n // 2 + 2)), n)
    return {"white": white.astype(np.float32), "pink": pink.astype(np.float32)}


def noise_sources() -> dict[str, np.ndarray]:
    """The recorded noises at :data:`BASE` Hz by label ``kind`` or ``kind:source``."""
    out = {kind: read_mono(NOISE_DIR / name) for kind, name in REAL_NOISES.items()}
    tracks = {t.name: t for t in find_tracks(MUSIC_DATA)} if MUSIC_DATA.is_dir() else {}
    for name in TRACKS:
        if name in tracks:
            stems = decode_track(tracks[name], BASE)  # mixture, then SOURCES
            for stem in ("drums", "other"):
                out[f"{stem}:{name.split(' - ')[0]}"] = stems[1 + SOURCES.index(stem)].mean(axis=0)
    return out


def band_share(x: np.ndarray, rate: int, above: float) -> float:
    """Share of x's energy above ``above`` Hz, in dB (Welch spectrum, 4096-sample Hann windows)."""
    w = np.hanning(4096)
    segs = np.lib.stride_tricks.sliding_window_view(x, 4096)[::2048]
    p = (np.abs(np.fft.rfft(segs * w, axis=-1)) ** 2).mean(axis=0)
    f = np.fft.rfftfreq(4096, 1 / rate)
    return float(10 * np.log10(p[f >= above].sum() / p.sum() + 1e-30))


def high_band(x: np.ndarray, rate: int, edge: float) -> np.ndarray:
    """x with everything below ``edge`` Hz removed (FFT brick wall)."""
    f = np.fft.rfft(x)
    f[np.fft.rfftfreq(x.size, 1 / rate) < edge] = 0
    return np.fft.irfft(f, x.size)


def sdr_db(est: np.ndarray, ref: np.ndarray) -> float:
    """SDR in dB; 0 when ``ref`` is empty."""
    e = np.sum(ref.astype(np.float64) ** 2)
    if e <= 1e-20:
        return 0.0
    return float(10 * np.log10(e / max(np.sum((ref - est) ** 2), 1e-20)))


def frame_energy(x: np.ndarray, rate: int) -> np.ndarray:
    """Mean energy of ``x`` (n,) in centred windows of 2 frames, one per 10-ms frame: (frames,)."""
    hop = int(FRAME * rate)
    c = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    mid = np.arange(x.size // hop) * hop + hop // 2
    lo, hi = np.clip(mid - hop, 0, x.size), np.clip(mid + hop, 0, x.size)
    return (c[hi] - c[lo]) / np.maximum(hi - lo, 1)


def frame_gain(g: np.ndarray, n: int, rate: int) -> np.ndarray:
    """Per-frame gains (frames,) -> per-sample gains (n,) at ``rate``, linearly interpolated."""
    hop = int(FRAME * rate)
    return np.interp(np.arange(n), np.arange(g.size) * hop + hop // 2, g)


def gains(stems: np.ndarray, model_rate: int, residual: np.ndarray, rate: int,
          ref_hb: np.ndarray, noise_hb: np.ndarray) -> dict[str, np.ndarray]:
    """The voice's gain per frame on the residual, by each rule.

    ``stems`` (2, n_model): voice and noise at the model's rate; ``residual`` (n,) at the file's
    ``rate``; ``ref_hb``, ``noise_hb`` (n,): the true voice and noise above the edge (oracle only).
    """
    from scipy.optimize import nnls

    top = [np.pad(np.diff(s, 2), (1, 1)) for s in stems]  # second difference: weighs the top of the band
    ev, en = (np.sqrt(frame_energy(t, model_rate)) for t in top)
    er = frame_energy(residual, rate)
    m = min(ev.size, er.size)
    ev, en, er = ev[:m], en[:m], er[:m]
    (av, an), _ = nnls(np.stack([ev, en], 1), er)
    tv, tn = frame_energy(ref_hb, rate)[:m], frame_energy(noise_hb, rate)[:m]
    return {
        "to noise": np.zeros(m),
        "share": ev / (ev + en + 1e-12),
        "fitted": av * ev / (av * ev + an * en + 1e-12),
        "oracle": tv / (tv + tn + 1e-12),
    }


def mixture(voice: np.ndarray, noise: np.ndarray, snr: float) -> tuple[np.ndarray, np.ndarray]:
    """(voice, noise) scaled to ``snr`` dB and a mixture peak of 0.9."""
    energy = [np.sum(x.astype(np.float64) ** 2) for x in (voice, noise)]
    noise = noise * np.sqrt(energy[0] / energy[1]) * 10 ** (-snr / 20)
    peak = np.abs(voice + noise).max() / 0.9
    return voice / peak, noise / peak


def score_item(model, ref: np.ndarray, noise: np.ndarray, rate: int) -> dict[str, tuple[float, float]]:
    """Separate ref + noise (at ``rate``) and score the voice of each rule: {rule: (SI-SDR, SDR above edge)}."""
    sr = model.sample_rate
    edge = sr / 2
    mix = (ref + noise).astype(np.float32)
    low = torch.from_numpy(resample(mix[None], rate, sr).astype(np.float32))
    stems = separate(model, low)[:, 0].numpy()  # (2, n_model): voice, noise
    up = resample(stems, sr, rate)[:, : mix.size]
    up = np.pad(up, ((0, 0), (0, mix.size - up.shape[1])))
    residual = mix - up.sum(axis=0)
    ref_hb = high_band(ref, rate, edge + MARGIN)
    out = {}
    for rule, g in gains(stems, sr, residual, rate, ref_hb, high_band(noise, rate, edge + MARGIN)).items():
        est = up[0] + frame_gain(g, mix.size, rate) * residual
        full = float(si_sdr(torch.from_numpy(est.astype(np.float64)), torch.from_numpy(ref.astype(np.float64))))
        out[rule] = (full, sdr_db(high_band(est, rate, edge + MARGIN), ref_hb))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", action="append", default=None,
                    help="a model name or alias (a rate-dependent alias picks per file rate) or a "
                         ".safetensors file; repeatable")
    ap.add_argument("--snr", type=float, nargs="+", default=[0.0, 5.0])
    ap.add_argument("--rates", type=int, nargs="+", default=list(RATES), help="file sample rates of the mixtures")
    ap.add_argument("--sentences", type=int, default=len(SENTENCES), help="use the first N espeak-ng sentences")
    ap.add_argument("--sung", type=int, default=0,
                    help="also N PJS a cappella excerpts as voices (real 48 kHz recordings)")
    ap.add_argument("--no-synthetic", action="store_true", help="leave out pink and white noise")
    ap.add_argument("--threads", type=int, default=1, help="PyTorch CPU threads (0: PyTorch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    voices = [("espeak", espeak(v, t)) for v, t in SENTENCES[: args.sentences]]
    for path in sorted(SUNG_DIR.glob("pjs*.opus"))[: args.sung]:
        voices.append(("sung", loudest(read_mono(path), int(ITEM_SECONDS * BASE), BASE)))
    recorded = noise_sources()
    for kind, name in REAL_NOISES.items():
        x = recorded[kind]
        share = band_share(x, BASE, 12000)
        print(f"noise {kind}: {name}, {x.size / BASE:.1f} s, energy above 12 kHz {share:.1f} dB of the total")
    items = []  # (voice kind, noise kind, voice, noise) at BASE
    for vkind, v in voices:
        noises = {} if args.no_synthetic else pink_white(v.size, rng)
        for label, x in recorded.items():
            noises[label] = fit_length(x, v.size, BASE, offset=float(rng.uniform()))
        items += [(vkind, label.split(":")[0], v, x) for label, x in noises.items()]
    rows: dict[tuple, list[tuple[float, float]]] = {}
    edges = {}
    for name in args.model or ["voice-unet"]:
        for rate in args.rates:
            concrete = alias_for_rate(name, rate)
            model = get_model(name, rate=rate, trust_local=True)
            assert tuple(model.sources) == ("voice", "noise"), f"{name}: not a voice/noise model ({model.sources})"
            label = concrete if concrete == name else f"{name} ({concrete})"
            edges[label] = model.sample_rate / 2
            for vkind, nkind, v, x in items:
                v_r, x_r = (resample(s[None], BASE, rate)[0] for s in (v, x))
                for snr in args.snr:
                    ref, noise = mixture(v_r, x_r, snr)
                    for rule, val in score_item(model, ref, noise, rate).items():
                        rows.setdefault((label, vkind, nkind, rate, snr, rule), []).append(val)
    n_items = len(items) * len(args.rates) * len(args.snr)
    print(f"\n{n_items} items per model ({len(voices)} voices x {len(items) // len(voices)} noises x "
          f"{len(args.rates)} rates x {len(args.snr)} SNRs), {time.perf_counter() - t0:.0f} s in all\n")

    def fmt(x: float) -> str:
        return f"{round(x, 2) + 0.0:.2f}"  # no "-0.00"

    def mean(label, rule, **match):
        sel = [np.array(v) for k, v in rows.items() if k[0] == label and k[5] == rule
               and all(k[{"vkind": 1, "nkind": 2, "rate": 3}[f]] == val for f, val in match.items())]
        a = np.concatenate(sel)
        return len(a), a[:, 0].mean(), a[:, 1].mean()

    for label, edge in edges.items():
        print(f"{label}: edge {edge / 1000:g} kHz; SDR of the voice above {(edge + MARGIN) / 1000:g} kHz\n")
        print("| voice | noise | rule | voice SI-SDR | voice SDR above edge |")
        print("|---|---|---|---:|---:|")
        groups = sorted({(k[1], k[2]) for k in rows if k[0] == label})
        for vkind, nkind in groups:
            for rule in RULES:
                _, a, b = mean(label, rule, vkind=vkind, nkind=nkind)
                print(f"| {vkind} | {nkind} | {rule} | {fmt(a)} | {fmt(b)} |")
        for vkind in sorted({g[0] for g in groups}):
            for rate in args.rates:
                for rule in RULES:
                    n, a, b = mean(label, rule, vkind=vkind, rate=rate)
                    print(f"| {vkind} | all at {rate / 1000:g} kHz ({n}) | {rule} | {fmt(a)} | {fmt(b)} |")
            for rule in RULES:
                n, a, b = mean(label, rule, vkind=vkind)
                print(f"| {vkind} | **all ({n})** | {rule} | **{fmt(a)}** | **{fmt(b)}** |")
        print()


if __name__ == "__main__":
    main()

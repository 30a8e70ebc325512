"""Training of the music model: supervised losses plus the semi-supervised adversarial machinery.

After Michelashvili, Benaim & Wolf, "Semi-supervised monaural singing voice separation with a
masking network trained on synthetic mixtures" (ICASSP 2019), extended to stereo and four
sources. The masking network ``g`` (a :class:`~deepsep.models.music.SourceMasker`: the BLSTM
``music_masker`` or the band-split ``music_bandsplit``) is trained with

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

The step loop, options and checkpoints are the core's (:mod:`deepsep.train.core`,
:mod:`deepsep.train.checkpoints`); a checkpoint also holds the adversary's state;
``<out>/split.json`` records the validation tracks (held out by track), and the selection tracks
that pick the best checkpoint instead of them (``--select-tracks``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..dsp import stft
from ..errors import UsageError
from ..models.base import SeparationModel
from ..models.music import SourceMasker
from ..musdb import SHARED_MUSDB7, MusicDataset, apply_gains, flip_signs, random_excerpt, remix, swap_channels
from ..paths import data_path
from . import distributed
from .adversary import Adversary
from .core import RunOptions, StepLoss, Validation, model_config, start_run, train_task
from .export import REPO_ROOT
from .validation import baselines, evaluate_music

ARCH = "music_masker"


@dataclass(kw_only=True)
class MusicTrainOptions(RunOptions):
    """Everything a music run depends on (saved in its checkpoints and log)."""

    model: str = ARCH
    #: the training tracks [default: MUSDB18's 7-s training excerpts under the data root]
    data: str = field(default_factory=lambda: data_path(SHARED_MUSDB7))
    extra: list[str] = field(default_factory=list)  # more track folders, for training only (e.g. music/eif)
    vocals: list[str] = field(default_factory=list)  # folders of a cappella files, for training only (music/pjs)
    drums: list[str] = field(default_factory=list)  # folders of drum stems, for training only (deepsep data drums)
    other: list[str] = field(default_factory=list)  # folders of "other" stems alone (e.g. Frets on Fire guitars)
    mixtures: list[str] = field(default_factory=list)  # folders of unlabelled full mixes (music/songs)
    solo_minutes: float = 60.0           # at most this much of each vocals / drums / other folder
    mixture_minutes: float = 120.0       # at most this much of each mixtures folder (~11 MB of memory a minute)
    main_share: float | None = None      # share of the draws from the --data tracks (default: every track by length)
    cache: str | None = None             # decoded-track cache (default ~/.cache/deepsep/musdb)
    n_valid: int = 10                    # tracks held out for validation
    n_select: int = 0                    # training tracks held out to pick the checkpoint with (0: validation picks)
    split_seed: int = 42
    steps: int = 20000
    lr: float = 2e-3
    d_lr: float = 2e-4
    warmup: int = 50
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
    speed: float = 0.0                   # augmentation: playback rate drawn in 1 +- speed (pitch and tempo)
    out: str = "runs/music"
    valid_every: int = 250

    def __post_init__(self) -> None:
        if self.mixtures and self.supervised_only:
            raise UsageError("unlabelled mixtures (--mixtures) only train through the semi-supervised losses; "
                             "drop --supervised-only")
        if not 0.0 <= self.speed <= 0.3:
            raise UsageError(f"--speed must lie between 0 and 0.3 (a playback rate of 1 +- speed), not {self.speed:g}")
        if self.main_share is not None:
            if not 0.0 < self.main_share < 1.0:
                raise UsageError(f"--main-share must lie between 0 and 1 (exclusive), not {self.main_share:g}")
            if not (self.extra or self.vocals or self.drums or self.other):
                raise UsageError("--main-share divides the draws between --data and the added sets "
                                 "(--extra, --vocals, --drums, --other): give at least one")


# ----------------------------------------------------------------------------- data


def track_weights(lengths: Sequence[int], main: Sequence[bool], main_share: float | None = None) -> np.ndarray:
    """The chance of drawing each training track, (tracks,) summing to 1: in proportion to its
    length, and with ``main_share`` the ``main`` tracks together get that share of the draws (each
    by its length among them) and the others the rest."""
    w = np.asarray(lengths, dtype=np.float64)
    is_main = np.asarray(main, dtype=bool)
    if main_share is not None and is_main.any() and (~is_main).any():
        w = np.where(is_main, main_share * w / w[is_main].sum(), (1.0 - main_share) * w / w[~is_main].sum())
    return w / w.sum()


class MusicBatches:
    """Random augmented batches from the training tracks (see :func:`deepsep.musdb.remix`): tracks
    are drawn by ``weights`` (default: in proportion to their length; see :func:`track_weights`),
    and ``known`` gives each track's mask of known stems (default: all known). ``songs`` are
    unlabelled full mixes (2, time), drawn by length (:meth:`songs_batch`)."""

    def __init__(self, tracks: Sequence[np.ndarray], segment: int, seed: int, p_remix: float = 0.5,
                 known: Sequence[np.ndarray] | None = None, songs: Sequence[np.ndarray] = (),
                 weights: np.ndarray | None = None, speed: float = 0.0):
        self.tracks = list(tracks)
        self.known = None if known is None else list(known)
        self.songs = list(songs)
        self.segment = segment
        self.p_remix, self.speed = p_remix, speed
        lengths = [t.shape[-1] for t in self.tracks]
        self.weights = track_weights(lengths, [True] * len(lengths)) if weights is None else weights
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(stems (batch, sources, channels, time), known (batch, sources) bool)."""
        pairs = [remix(self.tracks, self.segment, self.rng, known=self.known, weights=self.weights,
                       p_remix=self.p_remix, speed=self.speed) for _ in range(size)]
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

    Written for speed (a third of a CPU training step was spent here): everything that does not
    depend on the masks is computed without gradients, and with ``c = Re(conj(X) Y) / |X|`` the
    waveform error is ``(M |X| - c)^2 + (|Y|^2 - c^2)``, so both losses share ``M |X|``.
    """
    b, s = masks.shape[:2]
    if known is not None and not bool(known.all()):
        masks = merge_unknown(masks, known)
    with torch.no_grad():
        weight = torch.ones(b, s, device=masks.device) if known is None else known.to(masks.dtype)
        norm = weight.sum() * masks[0, 0].numel()  # the mean over bins of one stem, then over known stems
        xm = mix.abs().unsqueeze(1)                                       # (b, 1, c, f, n)
        ym = target.abs()
        c = (mix.conj().unsqueeze(1) * target).real / xm.clamp_min(1e-20)  # |c| <= |Y|; 0 where X is
        l1_w = weight / ((xm.mean(dim=(1, 2, 3, 4)) + 1e-8)[:, None] * norm)          # (b, s)
        wave_w = weight * s / ((xm.pow(2).mean(dim=(1, 2, 3, 4)) + 1e-10)[:, None] * norm)
        rest = ((ym.pow(2) - c.pow(2)).sum(dim=(2, 3, 4)) * wave_w).sum()
    est = masks * xm
    l1 = ((est - ym).abs().sum(dim=(2, 3, 4)) * l1_w).sum()
    wave = ((est - c).pow(2).sum(dim=(2, 3, 4)) * wave_w).sum() + rest
    return l1, wave


@dataclass
class _Part:
    """Made-up examples in the generator's batch: mixture STFTs (n, channels, freq, frames), their
    target stem STFTs (n, sources, channels, freq, frames), the known stems (n, sources) bool
    (None: all), the weight of their loss and the name their L1 is logged by."""

    mix: torch.Tensor
    target: torch.Tensor
    known: torch.Tensor | None
    weight: float
    name: str


class MusicLoss:
    """The generator's losses on one batch of stems; keeps the previous step's estimates (pool)."""

    def __init__(self, model: SeparationModel, opts: MusicTrainOptions, adversary: Adversary | None):
        if not isinstance(model, SourceMasker):
            raise TypeError(f"the music losses need a music masker, not a {type(model).__name__}")
        self.model, self.opts, self.adv = model, opts, adversary
        self.pool: torch.Tensor | None = None  # previous estimates, complex (b, s, c, f, n)
        self.gen = torch.Generator().manual_seed(opts.seed + 1)

    def __call__(self, stems: torch.Tensor, known: torch.Tensor | None = None, songs: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        """stems (batch, sources, channels, time), known (batch, sources) bool (default: all),
        songs (m, channels, time) unlabelled mixtures (semi-supervised only) -> (loss, parts,
        estimated mags (batch + m, sources, ...), real mags (batch, sources, ...))."""
        cfg, o = self.model.config, self.opts
        Y = stft(stems, cfg.n_fft, cfg.hop)[..., : cfg.bins, :]   # (b, s, c, f, n)
        X = Y.sum(dim=1)                                            # mixture = sum of stems
        made_up: list[_Part] = []
        song_mix = None  # unlabelled mixtures (m, c, f, n): no target, judged by the adversary
        if not o.supervised_only:
            made_up = self._synthetic(Y, known) + self._identity(Y)
            if songs is not None and len(songs):
                song_mix = stft(songs, cfg.n_fft, cfg.hop)[..., : cfg.bins, :]
        mixes = [X, *(p.mix for p in made_up), *([] if song_mix is None else [song_mix])]
        M = self.model.masks(torch.cat(mixes), full=False)  # masks of all items, in that order
        l1, wave = mask_losses(M[:len(X)], X, Y, known)
        loss = l1 + o.wave_weight * wave
        parts = {"l1": float(l1.detach()), "wave": float(wave.detach())}
        j = len(X)
        for p in made_up:
            l1, wave = mask_losses(M[j:j + len(p.mix)], p.mix, p.target, p.known)
            loss = loss + p.weight * (l1 + o.wave_weight * wave)
            parts[p.name] = float(l1.detach())
            j += len(p.mix)
        return self._adversarial(loss, parts, X, Y, M, song_mix)

    def _synthetic(self, Y: torch.Tensor, known: torch.Tensor | None) -> list[_Part]:
        """Synthetic mixtures (from the second step): the estimated source i of example k (the pool)
        plus the real other sources of example k+1. Y: stem STFTs (b, s, c, f, n)."""
        b, s = Y.shape[:2]
        n = min(b, round(b * self.opts.synth_fraction))
        if self.pool is None or not n:
            return []
        k = torch.arange(n)
        i = torch.randint(0, s, (n,), generator=self.gen)
        target = Y[(k + 1) % b].clone()
        target[torch.arange(n), i] = self.pool[k % len(self.pool), i]
        syn_known = None
        if known is not None:  # the other example's mask, with the estimated stem known
            syn_known = known[(k + 1) % b].clone()
            syn_known[torch.arange(n), i] = True
        return [_Part(target.sum(1), target, syn_known, self.opts.synth_weight, "synth")]

    def _identity(self, Y: torch.Tensor) -> list[_Part]:
        """Pure sources: source i of example k, to come back as itself in stem i and silence elsewhere."""
        b, s = Y.shape[:2]
        n = min(b, round(b * self.opts.identity_fraction))
        if not n:
            return []
        k = torch.randperm(b, generator=self.gen)[:n]
        i = torch.randint(0, s, (n,), generator=self.gen)
        pure = Y[k, i]
        target = torch.zeros_like(Y[:n])
        target[torch.arange(n), i] = pure
        return [_Part(pure, target, None, self.opts.identity_weight, "identity")]

    def _adversarial(self, loss: torch.Tensor, parts: dict[str, float], X: torch.Tensor, Y: torch.Tensor,
                     M: torch.Tensor, song_mix: torch.Tensor | None
                     ) -> tuple[torch.Tensor, dict[str, float], torch.Tensor, torch.Tensor]:
        """Add the generator's adversarial loss on the estimated magnitudes of the labelled examples
        (mixtures X, stems Y) and the songs (``song_mix``; their masks last in M); keep their
        estimates (the songs' where there are any) for the next step's synthetic mixtures.
        Returns (loss, parts, estimated mags, real mags of other examples)."""
        b = len(X)
        mixes = X if song_mix is None else torch.cat([X, song_mix])  # labelled, then the songs
        masks = M[:b] if song_mix is None else torch.cat([M[:b], M[len(M) - len(song_mix):]])
        est_mag = masks * mixes.abs().unsqueeze(1)
        real_mag = Y.abs().roll(b // 2, dims=0)  # unpaired real sources (other examples)
        if self.adv is not None and not self.opts.supervised_only:
            g = self.adv.generator_loss(est_mag)
            loss = loss + self.opts.adv_weight * g
            parts["g_adv"] = float(g.detach())
            pool = masks * mixes.unsqueeze(1) if song_mix is None else masks[b:] * mixes[b:].unsqueeze(1)
            self.pool = pool.detach()
        return loss, parts, est_mag, real_mag


# ----------------------------------------------------------------------------- loop


def load_data(opts: MusicTrainOptions, progress: bool = False) -> MusicDataset:
    """The run's tracks (decoded once into the cache) at the model's sample rate, split by track."""
    sample_rate = model_config(opts).sample_rate
    data = MusicDataset(opts.data, n_valid=opts.n_valid, n_select=opts.n_select, split_seed=opts.split_seed,
                        cache_dir=opts.cache,
                        sample_rate=sample_rate, split_file=opts.out_dir / "split.json", progress=progress,
                        extra=opts.extra, solo=[*(("vocals", f) for f in opts.vocals), *(("drums", f) for f in opts.drums),
                                                *(("other", f) for f in opts.other)],
                        solo_minutes=opts.solo_minutes, mixtures=opts.mixtures, mixture_minutes=opts.mixture_minutes)
    require_known_stems(data)
    return data


def require_known_stems(data: MusicDataset) -> None:
    """Refuse validation (or selection) tracks with unknown stems (ValueError): validation scores
    every stem and would score an unknown one as silence. Training tracks may miss stems: the loss
    leaves them out (:func:`mask_losses`)."""
    partial = {n: s for n, s in data.unknown_stems().items() if n in {*data.valid_names, *data.select_names}}
    if partial:
        listed = "; ".join(f"{n} (no {', '.join(s)})" for n, s in sorted(partial.items()))
        raise ValueError(f"music validation needs all four stems of every validation track; unknown stems in: {listed}")


class MusicTask:
    """The music task for the step loop (a :class:`deepsep.train.core.Task`): batches of remixed
    stems (and song excerpts), :class:`MusicLoss`, the adversary's step after the generator's,
    validation by SDR on the validation tracks."""

    best_key = "best_sdr"

    def __init__(self, opts: MusicTrainOptions, model: SeparationModel, dataset: MusicDataset, device: torch.device,
                 resume: bool = False):
        self.opts, self.model, self.dataset, self.device = opts, model, dataset, device
        self.data = self._batches()
        self.adversary = (None if opts.supervised_only else
                          Adversary(model.audio_channels, len(model.sources), opts.d_lr, device))
        if not resume and not opts.init:  # an --init model brings its own
            model.set_normalisation(self.data.batch(min(32, 4 * opts.batch_size))[0].sum(1).to(device))
            self.data = self._batches()  # the run's batches start afresh
        self.loss = MusicLoss(model, opts, self.adversary)
        self.title = "train music" + (" (supervised)" if opts.supervised_only else " (adversarial)")

    def _batches(self) -> MusicBatches:
        d, o = self.dataset, self.opts
        tracks = [d.known_stems(n) for n in d.train_names]
        weights = track_weights([t.shape[-1] for t in tracks], [n in d.main_names for n in d.train_names], o.main_share)
        return MusicBatches(tracks, int(round(o.segment * self.model.sample_rate)), o.seed, p_remix=o.p_remix,
                            known=[d.known[n] for n in d.train_names], songs=list(d.songs.values()), weights=weights,
                            speed=o.speed)

    def step_loss(self) -> StepLoss:
        o, adversary = self.opts, self.adversary
        stems, known = (distributed.shard(t) for t in self.data.batch(o.batch_size))  # this rank's share
        local = distributed.local_batch(o.batch_size)
        n_songs = round(local * o.mixture_fraction) if self.data.songs and adversary is not None else 0
        mixes = (distributed.shard(self.data.songs_batch(n_songs * distributed.world_size())).to(self.device)
                 if n_songs else None)
        known = known.to(self.device)
        loss, parts, est_mag, real_mag = self.loss(stems.to(self.device), known, mixes)
        real_known = known.roll(len(known) // 2, dims=0)  # as real_mag: other examples' stems
        after = None if adversary is None else (lambda: {"d": adversary.step(real_mag, est_mag, real_known)})
        return loss, parts, after

    def validate(self, model: SeparationModel) -> Validation:
        """SDR on the validation tracks; with selection tracks, also on them, and they pick the best."""
        res = evaluate_music(model, self.dataset, device=self.device)
        text = f"SDR {res['sdr']['avg']:.2f} dB"
        if not self.dataset.select_names:
            return Validation(res, res["sdr"]["avg"], text)
        res["select"] = evaluate_music(model, self.dataset, self.dataset.select_names, device=self.device)
        picked = res["select"]["sdr"]["avg"]
        return Validation(res, picked, f"select {picked:.2f} dB, {text}")

    def states(self) -> dict[str, Any]:
        return {"adversary": self.adversary.state_dict()} if self.adversary is not None else {}

    def load_states(self, ck: dict[str, Any]) -> None:
        if self.adversary is not None and "adversary" in ck:
            self.adversary.load_state_dict(ck["adversary"])


def train_music(opts: MusicTrainOptions, progress: bool = True, resume: bool = False,
                on_log: Callable[[dict[str, Any]], None] | None = None,
                data: MusicDataset | None = None) -> dict[str, Any]:
    """Train (or resume) the music model; return the final summary (steps, best validation SDR)."""
    device, paths, model, facts = start_run(opts, resume)
    with distributed.main_first(opts.device):  # rank 0 decodes into the cache and writes split.json
        data = data or load_data(opts)
    require_known_stems(data)
    task = MusicTask(opts, model, data, device, resume)
    facts.update(train_tracks=len(data.train_names), valid_tracks=data.valid_names, select_tracks=data.select_names)
    return train_task(opts, model, task, device, paths, resume, progress, on_log, facts=facts)


# ----------------------------------------------------------------------------- export

LICENSE = "MUSDB18 (7-s excerpts), research and non-commercial use only; code MIT"
TRAINED_ON = (f"MUSDB18 training tracks, 7-s excerpts (DATA_ROOT/{SHARED_MUSDB7.as_posix()}), "
              "validation tracks held out by track")


def trained_on(opts: MusicTrainOptions) -> str:
    """What a run trained on, in words, for its manifest entry."""
    default = Path(opts.data).parts[-3:] == SHARED_MUSDB7.parts
    parts = [TRAINED_ON if default else f"the tracks of {opts.data} (validation tracks held out)"]
    parts += [f"stems of {f}" for f in opts.extra]
    parts += [f"a cappella vocals of {f} (at most {opts.solo_minutes:g} min)" for f in opts.vocals]
    parts += [f"drum stems of {f} (at most {opts.solo_minutes:g} min)" for f in opts.drums]
    parts += [f"'other' stems of {f} (at most {opts.solo_minutes:g} min)" for f in opts.other]
    parts += [f"unlabelled mixtures of {f} (at most {opts.mixture_minutes:g} min)" for f in opts.mixtures]
    if opts.main_share is not None:
        parts.append(f"{opts.main_share:.0%} of the examples drawn from the first")
    return "; ".join(parts)


def export_music(checkpoint: str | Path, name: str, out_dir: str | Path | None = None,
                 manifest: str | Path | None = REPO_ROOT / "weights_manifest.json", half: bool = True, training_command: str = "",
                 data: MusicDataset | None = None, description: str = "",
                 earlier_stages: list[dict[str, Any]] | None = None, final: bool = False) -> dict[str, Any]:
    """Write ``<out_dir>/<name>.safetensors`` from a music checkpoint and return its manifest entry
    (``final``: the checkpoint is a run's last.pt, exported as its moving average where it has one).

    Metrics are measured on the exported file itself (reloaded) on the run's validation tracks,
    with the mixture and oracle-mask baselines at the model's STFT settings. ``earlier_stages``:
    the stages behind an ``--init`` checkpoint file (an ``--init`` model name brings its own).
    """
    from ..weights import BUNDLED_DIR
    from .export import manifest_entry, training_stages, update_manifest, write_weights

    ck, reloaded, path = write_weights(checkpoint, name, out_dir or BUNDLED_DIR, LICENSE, half, average=final)
    opts = MusicTrainOptions(**{k: v for k, v in ck["options"].items() if k in MusicTrainOptions.__dataclass_fields__})
    data = data or load_data(opts)
    metrics = evaluate_music(reloaded, data)
    cfg = reloaded.config
    metrics = {
        "validation": f"SDR (dB, MDX global SDR per stem, mean over {len(data.valid_names)} held-out MUSDB18 "
                      f"training tracks, whole 6.8-s excerpts through the pipeline of deepsep eval): "
                      + ", ".join(data.valid_names)
                      + ("; the run's final weights, which no split picked" if final else
                         f"; the checkpoint picked on {len(data.select_names)} other held-out training tracks: "
                         + ", ".join(data.select_names) if data.select_names else "; the same tracks picked the checkpoint"),
        "step": ck["step"],
        "method": "supervised only" if opts.supervised_only else "supervised + semi-supervised adversarial",
        **metrics,
        "baselines": baselines(data, cfg.n_fft, cfg.hop, sources=reloaded.sources),
    }
    description = description or (
            f"Stereo 4-source spectrogram masking network ({ck['arch']}: softmax masks, mixture phase); "
            + ("trained with supervised losses only"
               if opts.supervised_only else
               "trained semi-supervised with adversarial losses after Michelashvili, Benaim & Wolf (ICASSP 2019)"))
    entry = manifest_entry(name, "music", ck["arch"], reloaded, path, LICENSE, trained_on(opts), metrics,
                           training_command, description,
                           training_stages(ck, training_command, earlier_stages) if opts.init else None)
    if manifest:
        update_manifest(entry, manifest)
    return entry

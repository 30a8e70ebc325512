"""The voice task: the U-Net and Conv-TasNet learn voice / noise from speech mixed with noise (on
the fly, optionally augmented and in worker processes, or from a prepared mixture folder),
validated on a fixed set (:mod:`deepsep.train.validation`) by SI-SDR. Each architecture's loss is
beside its model (:data:`deepsep.registry.TRAINING_LOSSES`); the loop is :mod:`deepsep.train.core`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from ..augment import room_impulse_responses
from ..errors import UsageError
from ..models.bag import ModelBag
from ..models.base import SeparationModel
from ..paths import data_path
from ..registry import training_loss
from ..voicedata import Augmentation, MixtureFolder, OnTheFlyMixer, load_corpus
from . import distributed
from .batches import WorkerBatches
from .checkpoints import BatchSource, load_frozen
from .core import RunOptions, StepLoss, Validation, start_run, train_task
from .validation import ValidationSet, evaluate, validation_set_for


@dataclass(kw_only=True)
class VoiceTrainOptions(RunOptions):
    """Everything a voice run depends on (saved in its checkpoints and log)."""

    model: str = "unet"                   # registry name: "unet" or "convtasnet"
    speech_dir: str = field(default_factory=lambda: data_path("speech", "train"))  # under the data root
    noise_dir: str = field(default_factory=lambda: data_path("noise", "train"))
    mixtures: str | None = None           # a prepared mixture folder instead of on-the-fly mixing
    valid_speech_dir: str = field(default_factory=lambda: data_path("speech", "valid"))
    valid_noise_dir: str = field(default_factory=lambda: data_path("noise", "valid"))
    valid_dir: str = "runs/voice-valid"   # where the validation mixtures are built (once)
    valid_seconds: float = 4.0
    steps: int = 3000
    lr: float = 1e-3
    warmup: int = 100
    segment: float = 4.0                  # seconds
    snr_low: float = -5.0
    snr_high: float = 10.0
    out: str | None = None                # default runs/<model>
    valid_every: int = 500
    si_weight: float = 0.0                # U-Net: weight of a waveform -SI-SDR term added to L1
    noise_weight: float = 0.0             # Conv-TasNet: weight of the noise SI-SNR next to the voice's
    p_reverb: float = 0.0                 # augmentation (voicedata.Augmentation): reverberated speech
    p_eq: float = 0.0                     # random EQ of the voice and, independently, of the noise
    p_band_limit: float = 0.0             # voice and noise limited to the band of an 8 kHz recording
    p_full_rate: float = 0.0              # voice and noise through a 48 kHz round trip, as a 44.1/48 kHz file reaches the model
    narrow_speech_dir: str | None = None  # narrow-band speech (e.g. speech/train, 8 kHz) for band-limited examples
    narrow_noise_dir: str | None = None   # narrow-band noise (e.g. noise/train, 8 kHz) for band-limited examples
    rir_count: int = 200                  # simulated rooms for training (validation has its own)
    valid_p_reverb: float = 0.0           # share of reverberant validation items
    valid_rate: int = 0                   # validation items resampled to this file rate first (0: the model's)
    mag_power: float = 1.0                # U-Net: the L1 loss on magnitudes raised to this power (0.3: compressed)
    stft_weight: float = 0.0              # weight of a multi-resolution STFT loss on the voice waveform (auraloss)
    workers: int = 0                      # processes mixing batches ahead of the step (0: in the training process)
    partner: str | None = None            # a frozen model whose stems are averaged with this one's (loss, validation)
    partner_weight: float = 0.75          # the partner's weight in that average: train a member of an ensemble for it

    def __post_init__(self) -> None:
        """Refuse options that cannot go together (a UsageError, before any work)."""
        if self.workers and self.mixtures:
            raise UsageError("--workers mixes examples on the fly; it does not go with --mixtures")
        if not 0.0 <= self.p_full_rate <= 1.0:
            raise UsageError(f"--p-full-rate must be from 0 to 1, not {self.p_full_rate}")
        if self.valid_rate < 0:
            raise UsageError(f"--valid-rate must be a sample rate in Hz, not {self.valid_rate}")
        if self.p_full_rate and self.mixtures:
            raise UsageError("--p-full-rate augments on-the-fly mixing; it does not go with --mixtures")
        if not 0.0 < self.partner_weight < 1.0:
            raise UsageError(f"--partner-weight must lie between 0 and 1, not {self.partner_weight}")
        if (self.narrow_speech_dir or self.narrow_noise_dir) and (self.mixtures or not self.p_band_limit):
            raise UsageError("--narrow-speech and --narrow-noise feed the band-limited examples of on-the-fly "
                             "mixing, which this run does not make (the 16 kHz recipes do, without --mixtures)")


def voice_loss(model: SeparationModel, mix: torch.Tensor, voice: torch.Tensor, opts: VoiceTrainOptions,
               partner: SeparationModel | None = None) -> torch.Tensor:
    """The model's training loss on a batch; mix, voice: (batch, channels=1, time).

    The architecture's own loss (:func:`deepsep.registry.training_loss`: the U-Net's magnitude L1
    (+ SI-SDR), Conv-TasNet's SI-SNR), plus ``stft_weight`` times a multi-resolution STFT loss on
    the voice waveform. With a frozen ``partner`` both score the ensemble ``partner_weight *
    partner + (1 - partner_weight) * model`` (the partner runs without gradients).
    """
    scored = None
    if partner is not None:
        with torch.no_grad():
            scored = (partner(mix).float(), opts.partner_weight)
    loss, stems = training_loss(opts.model)(model, mix, voice, opts, scored)
    if opts.stft_weight:
        loss = loss + opts.stft_weight * _mrstft(model.sample_rate)(stems[:, 0], voice)
    return loss


_MRSTFT: dict[int, Any] = {}


def _mrstft(sample_rate: int) -> Any:
    """auraloss's multi-resolution STFT loss (spectral convergence + log magnitude) with windows
    of 16, 32 and 64 ms at ``sample_rate``, 75 % overlap; inputs (batch, channels, time)."""
    if sample_rate not in _MRSTFT:
        from auraloss.freq import MultiResolutionSTFTLoss

        ffts = [int(sample_rate * ms / 1000) for ms in (16, 32, 64)]
        _MRSTFT[sample_rate] = MultiResolutionSTFTLoss(fft_sizes=ffts, hop_sizes=[f // 4 for f in ffts],
                                                      win_lengths=ffts)
    return _MRSTFT[sample_rate]


class VoiceBatches(BatchSource, Protocol):
    """A source of voice batches: (mix, voice, noise), each (batch, channels=1, time)."""

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...


class _FolderBatches:
    """Random batches from a prepared mixture folder (same interface as OnTheFlyMixer.batch)."""

    def __init__(self, root: str, sample_rate: int, segment: int, seed: int):
        self.gen = torch.Generator().manual_seed(seed)
        self.ds = MixtureFolder(root, sample_rate, segment, self.gen)

    def batch(self, size: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        idx = torch.randint(0, len(self.ds), (size,), generator=self.gen).tolist()
        mix, voice, noise = (torch.stack(t) for t in zip(*(self.ds[i] for i in idx)))
        return mix, voice, noise

    def state(self) -> Any:
        return self.gen.get_state()

    def set_state(self, s: Any) -> None:
        self.gen.set_state(s)


def voice_batches(opts: VoiceTrainOptions, sample_rate: int, device: torch.device) -> VoiceBatches:
    """The run's training batches: from ``opts.mixtures``, else mixed on the fly (augmented as the
    options say; in ``opts.workers`` processes when given)."""
    segment = int(round(opts.segment * sample_rate))
    if opts.mixtures:
        return _FolderBatches(opts.mixtures, sample_rate, segment, opts.seed)
    rirs = room_impulse_responses(opts.rir_count, sample_rate, seed=opts.seed) if opts.p_reverb else []
    augment = Augmentation(sample_rate, rirs, opts.p_reverb, opts.p_eq, opts.p_band_limit, p_full_rate=opts.p_full_rate,
                           narrow_speech=load_corpus(opts.narrow_speech_dir, sample_rate, 0.5) if opts.narrow_speech_dir else [],
                           narrow_noise=load_corpus(opts.narrow_noise_dir, sample_rate) if opts.narrow_noise_dir else [])
    mixer = OnTheFlyMixer.from_folders(opts.speech_dir, opts.noise_dir, sample_rate, segment,
                                       snr_range=(opts.snr_low, opts.snr_high), seed=opts.seed, augment=augment)
    if opts.workers:
        return WorkerBatches(mixer, opts.batch_size, opts.workers, opts.seed, pin_memory=device.type == "cuda")
    return mixer


class VoiceTask:
    """The voice task for the step loop (a :class:`deepsep.train.core.Task`).

    With a ``partner`` (a frozen model), the loss (:func:`voice_loss`) and the validation (a
    :class:`~deepsep.models.bag.ModelBag`) score the weighted average of the partner's stems and the
    model's: the model learns to be the partner's ensemble member, making up for its errors rather
    than repeating them.
    """

    best_key = "best_si_sdr"

    def __init__(self, opts: VoiceTrainOptions, model: SeparationModel, data: VoiceBatches, valid: ValidationSet,
                 device: torch.device, partner: SeparationModel | None = None):
        self.opts, self.model, self.data, self.valid, self.device = opts, model, data, valid, device
        self.partner = partner
        self.title = f"train {opts.model}" + (f" beside {opts.partner}" if partner is not None else "")

    def _scored(self, model: SeparationModel) -> SeparationModel:
        """What validation scores: the model, or its average with the partner."""
        if self.partner is None:
            return model
        return ModelBag([self.partner, model], [self.opts.partner_weight, 1 - self.opts.partner_weight])

    def step_loss(self) -> StepLoss:
        mix, voice, _ = self.data.batch(self.opts.batch_size)  # the global batch: this rank's share of it
        mix, voice = distributed.shard(mix), distributed.shard(voice)
        return voice_loss(self.model, mix.to(self.device), voice.to(self.device), self.opts, self.partner), {}, None

    def validate(self, model: SeparationModel) -> Validation:
        res = evaluate(self._scored(model), self.valid, device=self.device)
        return Validation(res, res["si_sdr"], f"SI-SDRi {res['si_sdri']:.2f} dB")

    def states(self) -> dict[str, Any]:
        return {}

    def load_states(self, ck: dict[str, Any]) -> None:
        """Nothing of its own to restore."""


def train(opts: VoiceTrainOptions, progress: bool = True, resume: bool = False,
          on_log: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) a voice model; return the final summary (steps done, best validation)."""
    device, paths, model, facts = start_run(opts, resume)
    sr = model.sample_rate
    partner = None
    if opts.partner:  # before the data: a partner that does not fit is a usage mistake
        partner = load_frozen(opts.partner, device)
        if (partner.sample_rate, partner.audio_channels, partner.sources) != (sr, model.audio_channels, model.sources):
            raise UsageError(f"--partner {opts.partner}: {partner.sample_rate} Hz, {partner.sources}; the model "
                             f"trained beside it must match ({sr} Hz, {model.sources})")
    data = voice_batches(opts, sr, device)
    with distributed.main_first(opts.device):  # rank 0 builds the validation mixtures
        valid = ValidationSet(validation_set_for(dataclasses.asdict(opts), sr), sr, opts.valid_rate or None)
    task = VoiceTask(opts, model, data, valid, device, partner)
    return train_task(opts, model, task, device, paths, resume, progress, on_log, facts=facts)

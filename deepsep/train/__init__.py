"""Training: the core (options, step loop), checkpoints, the voice and music tasks, validation, export."""

from .checkpoints import load_checkpoint
from .export import export_model, update_manifest
from .validation import build_validation_set, evaluate
from .voice import VoiceTrainOptions, train

__all__ = [
    "VoiceTrainOptions", "train", "load_checkpoint", "export_model", "update_manifest",
    "build_validation_set", "evaluate",
]

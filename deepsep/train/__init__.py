"""Training of the voice models (U-Net, Conv-TasNet): loop, checkpoints, validation, export."""

from .export import export_model, update_manifest
from .loop import TrainOptions, load_checkpoint, train
from .validation import build_validation_set, evaluate

__all__ = [
    "TrainOptions", "train", "load_checkpoint", "export_model", "update_manifest",
    "build_validation_set", "evaluate",
]

"""deepsep: neural source separation for speech (voice/noise) and music (vocals/drums/bass/other).

The Python API (imported on first use, so that ``import deepsep`` stays light)::

    import deepsep
    model = deepsep.load_model("voice", sample_rate=16000)  # a name, alias or .safetensors file
    stems = deepsep.separate(model, audio, 16000)            # {"voice": ..., "noise": ...}
    result = deepsep.separate_file(model, "call.flac", "outputs")  # stems written as separate does
    separator = deepsep.Separator("voice")                   # a model kept for many signals and files
    stems = separator.separate_tensor(audio, 16000)          # the alias's model for 16 kHz content

``separate`` takes a numpy array or torch tensor, (time,) or (channels, time), and returns stems of
the same shape and type that add up to it; ``separate_file`` writes
``<out_dir>/<track>/<stem>.wav`` (see :class:`OutputOptions` and :class:`EngineOptions`) and
returns a ``FileResult``; ``Separator`` holds a model (each of an alias's, picked by the rate the
content fills: telephone-band audio at 16 kHz gets the 8 kHz model) and its options.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

#: public name -> (module, attribute)
_API = {
    "load_model": (".weights", "load_model"),
    "separate": (".api", "separate_array"),
    "separate_file": (".api", "separate_file"),
    "OutputOptions": (".api", "OutputOptions"),
    "EngineOptions": (".api", "EngineOptions"),
    "FileResult": (".api", "FileResult"),
    "Separator": (".api", "Separator"),
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'deepsep' has no attribute {name!r}")
    import importlib

    module, attr = _API[name]
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

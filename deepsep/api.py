"""The Python API in one place: load a model, separate arrays and files, keep a :class:`Separator`.

Each name lives in the module that holds its kind of work; this module only gathers them:

- :mod:`deepsep.pipeline`: the one array pipeline (rate and channels in, stems out) and
  in-memory separation (:func:`separate_array`, :func:`separate_to_arrays`);
- :mod:`deepsep.separation`: files, one at a time or a batch (:func:`separate_file`,
  :func:`separate_files`);
- :mod:`deepsep.separator`: :class:`Separator`, a model and its settings for repeated use;
- :mod:`deepsep.options`, :mod:`deepsep.outputs`, :mod:`deepsep.stems`: the options, where stems
  go, which stems;
- :mod:`deepsep.modelcache`, :mod:`deepsep.inputs`, :mod:`deepsep.interrupts`: models loaded
  once per run, the files of a batch, SIGINT/SIGTERM.
"""

from __future__ import annotations

from .inputs import input_rate
from .interrupts import Interrupted, interrupts_raise
from .modelcache import ModelCache
from .options import EngineOptions, OutputOptions, engine_options, set_threads
from .outputs import FileResult
from .pipeline import ArrayReader, separate_array, separate_to_arrays
from .separation import separate_file, separate_files
from .separator import Separator
from .stems import atten_lim_matrix, limit_attenuation, stem_matrix
from .weights import load_model

__all__ = [
    "ArrayReader", "EngineOptions", "FileResult", "Interrupted", "ModelCache", "OutputOptions", "Separator",
    "atten_lim_matrix", "engine_options", "input_rate", "interrupts_raise", "limit_attenuation", "load_model",
    "separate_array", "separate_file", "separate_files", "separate_to_arrays", "set_threads", "stem_matrix",
]

"""Where stems go and whether they may: output options checked, --filename templates, --suffix,
the paths of a file's stems, and the existing-output policy (refuse, overwrite, skip; stems of
another model in the same folder).

Outputs go to ``<out>/<--filename template>`` (default ``<track>/<stem>.<ext>``) or, with
``--suffix``, beside the input.
"""

from __future__ import annotations

import os
import string
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .audio import CLIP_POLICIES, DEFAULT_FILENAME, FILENAME_FIELDS, MP3_LEVELS, OUTPUT_FORMATS, subtype_for
from .errors import DeepsepError, ModelError, UsageError
from .models.base import SeparationModel
from .options import EXISTING_POLICIES, OutputOptions
from .stems import check_atten_lim, stem_matrix
from .weights import TEST_MODELS, Manifest, ManifestEntry, load_manifest


@dataclass
class FileResult:
    """What separating one file did: its stems' paths, timing, the gain applied, or its error."""

    path: Path
    track: str
    duration: float = 0.0  # seconds of input audio
    elapsed: float = 0.0  # seconds of wall time
    outputs: dict[str, Path] = field(default_factory=dict)
    gain_db: float = 0.0  # the common gain that "rescale" applied (0: none)
    model: str = ""  # the model that separated it (a rate-dependent alias picks one per file)
    error: str | None = None
    skipped: bool = False  # --skip-existing: every output existed, nothing was done
    warnings: list[str] = field(default_factory=list)  # about the input, e.g. a truncated file

    @property
    def rtf(self) -> float:
        """Real-time factor: processing time over audio duration (lower is faster)."""
        return self.elapsed / self.duration if self.duration else float("nan")


def check_output(output: OutputOptions, sources: Sequence[str] | None = None) -> None:
    """Raise UsageError unless the output options go together and, given the model's ``sources``
    (None: not known yet), with the model: the CLI checks once, before any file is read."""
    if output.clip not in CLIP_POLICIES:
        raise UsageError(f"--clip {output.clip}: choose from {', '.join(CLIP_POLICIES)}")
    try:
        subtype_for(output.fmt, output.bits)
    except DeepsepError as e:
        raise UsageError(str(e)) from None
    if output.mp3_bitrate is not None:
        if output.fmt != "mp3":
            raise UsageError(f"--mp3-bitrate is for --format mp3, not {output.fmt}")
        if output.mp3_bitrate not in MP3_LEVELS:
            raise UsageError(f"--mp3-bitrate {output.mp3_bitrate}: choose from {', '.join(map(str, MP3_LEVELS))}")
    if output.stems and output.two_stems is not None:
        raise UsageError("--stems and --two-stems cannot go together: give one")
    if output.stems and len(set(output.stems)) < len(output.stems):
        raise UsageError(f"--stems {','.join(output.stems)}: a stem is named twice")
    check_atten_lim(output.atten_lim)
    if output.existing not in EXISTING_POLICIES:
        raise UsageError(f"existing outputs: {output.existing!r} is not one of {', '.join(EXISTING_POLICIES)}")
    if output.suffix is not None:
        check_suffix(output)
    else:
        check_filename(output.filename)
    if sources is not None:
        names, _ = stem_matrix(sources, output)  # a stem the model lacks; --atten-lim on a model without voice/noise
        distinct = set(output_paths(Path(), Path(), "t", "m", names, output).values())
        if output.suffix is None and len(distinct) < len(names):
            raise UsageError(f"--filename {output.filename!r} gives different stems ({', '.join(names)}) the same name")


def filename_fields(template: str) -> list[str]:
    """The fields of a --filename template ('{track}/{stem}.{ext}' -> track, stem, ext); a
    UsageError when it is not a valid template, or a field has a format spec or conversion
    ({stem:>10}, {stem!r}: padding and quotes in file names)."""
    try:
        parsed = [(f, spec, conversion) for _, f, spec, conversion in string.Formatter().parse(template) if f is not None]
    except ValueError as e:
        raise UsageError(f"--filename {template!r}: {e} (write {{{{ and }}}} for literal braces)") from None
    for f, spec, conversion in parsed:
        if spec or conversion:
            written = f"{{{f}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}}"
            raise UsageError(f"--filename {template!r}: {written} has a {'conversion' if conversion else 'format spec'}; "
                             f"write the field alone, as {{{f}}}")
    return [f for f, _, _ in parsed]


def check_filename(template: str) -> None:
    """Raise UsageError unless ``template`` is a usable --filename: only the fields of
    FILENAME_FIELDS, {stem} among them, and a path inside the output folder."""
    fields = filename_fields(template)
    unknown = [f for f in fields if f not in FILENAME_FIELDS]
    if unknown:
        raise UsageError(f"--filename {template!r}: unknown field {{{unknown[0]}}} (the fields are "
                         f"{', '.join('{' + f + '}' for f in FILENAME_FIELDS)})")
    if "stem" not in fields:
        raise UsageError(f"--filename {template!r} has no {{stem}}: every stem of a file would get the same name")
    try:
        path = render_filename(template, model="model", track="track", stem="stem", ext="wav")
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise UsageError(f"--filename {template!r}: {e}") from None
    if path.is_absolute() or ".." in path.parts or not path.name:
        raise UsageError(f"--filename {template!r}: give a file path inside the output folder (-o), without '..'")


def check_suffix(output: OutputOptions) -> None:
    """Raise UsageError unless --suffix can name a file beside its input (not the input itself)."""
    suffix = output.suffix or ""
    if not suffix or "/" in suffix or os.sep in suffix or "\0" in suffix:
        raise UsageError(f"--suffix {suffix!r}: give a non-empty text without '/', added to the input's name")
    if output.filename != DEFAULT_FILENAME:
        raise UsageError("--suffix and --filename cannot go together: --suffix writes beside each input")


def output_root(out_dir: Path | None, output: OutputOptions) -> Path:
    """The output folder: ``out_dir`` (default ``outputs``); a UsageError for -o with --suffix,
    which writes beside each input, and for a folder that is a file (or lies in one)."""
    if output.suffix is not None and out_dir is not None:
        raise UsageError("-o and --suffix cannot go together: --suffix writes beside each input")
    root = out_dir if out_dir is not None else Path("outputs")
    for folder in (root, *root.parents) if output.suffix is None else ():  # the nearest part there must be a folder
        if os.path.lexists(folder):
            if not folder.is_dir():
                where = "" if folder == root else f" ({folder} is a file)"
                raise UsageError(f"-o {root}: a file, not a folder{where}")
            break
    return root


def existing_policy(overwrite: bool = False, skip_existing: bool = False) -> str:
    """The EXISTING_POLICIES entry that --overwrite and --skip-existing ask for (a UsageError for both)."""
    if overwrite and skip_existing:
        raise UsageError("--overwrite and --skip-existing cannot go together: give one")
    return "overwrite" if overwrite else "skip" if skip_existing else "refuse"


def render_filename(template: str, *, model: str, track: str, stem: str, ext: str) -> Path:
    """A --filename template filled in: the path of one stem under the output folder."""
    return Path(template.format(model=model, track=track, stem=stem, ext=ext))


def model_label(name: str) -> str:
    """A model name as {model} writes it: a local file's name without '.safetensors', others as they are."""
    return Path(name).name.removesuffix(".safetensors") or name


def output_paths(path: Path, out_dir: Path, track: str, model_name: str, names: Sequence[str],
                 output: OutputOptions) -> dict[str, Path]:
    """Stem name -> the file it is written to: ``out_dir / <--filename>``, or with --suffix the
    one stem beside the input, ``<track><suffix>.<fmt>``."""
    if output.suffix is not None:
        return {name: path.parent / f"{track}{output.suffix}.{output.fmt}" for name in names[:1]}
    model = model_label(model_name)
    return {n: out_dir / render_filename(output.filename, model=model, track=track, stem=n, ext=output.fmt)
            for n in names}


def spectrogram_path(result: FileResult, out_dir: Path, output: OutputOptions) -> Path:
    """Where --plot puts a file's spectrograms: the --filename path of a stem named 'spectrograms'
    (``<track>/spectrograms.png``), or beside the --suffix output with '.png'."""
    if output.suffix is not None:
        return next(iter(result.outputs.values())).with_suffix(".png")
    return out_dir / render_filename(output.filename, model=model_label(result.model), track=result.track,
                                     stem="spectrograms", ext="png")


def known_sources(manifest: Manifest | None = None, models: Iterable[SeparationModel] = ()) -> frozenset[str]:
    """Every source name of the manifest's models, the test models and ``models``: the stems that
    other separations may have left in a track folder."""
    found = {s for _, config, _ in TEST_MODELS.values() for s in config["sources"]}
    entries: Iterable[ManifestEntry]
    try:
        entries = (manifest or load_manifest()).entries.values()
    except ModelError:
        entries = ()
    found.update(s for e in entries for s in e.sources)
    found.update(s for m in models for s in m.sources)
    return frozenset(found)


def other_stem_paths(path: Path, out_dir: Path, track: str, model_name: str, sources: Sequence[str],
                     output: OutputOptions, known: Collection[str]) -> list[Path]:
    """Where stems of the ``known`` sources that this model does not have would be for this track
    (in every output format): stems a model with other sources wrote."""
    ours = {*sources, *(f"no_{s}" for s in sources)}
    theirs = sorted({*known, *(f"no_{s}" for s in known)} - ours)
    if output.suffix is not None or not theirs:
        return []
    return [p for ext in OUTPUT_FORMATS
            for p in output_paths(path, out_dir, track, model_name, theirs, OutputOptions(
                filename=output.filename, fmt=ext)).values()]


def same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` both exist and are one file (through links, however named)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # either is missing (a dangling link too) or cannot be looked at
        return False


def refuse_input_as_output(path: Path, targets: Iterable[Path]) -> None:
    """A DeepsepError when an output is the input ``path`` itself (the same file, however named:
    ``--filename "x/{stem}.{ext}"`` with x/voice.wav), which no option may replace."""
    for target in targets:
        if same_file(target, path):
            raise DeepsepError(f"{path}: its output {target} is the input itself, which is never replaced: "
                               "choose another -o or --filename")


def skip_or_refuse(targets: dict[str, Path], others: Iterable[Path], output: OutputOptions) -> bool:
    """Whether to skip a file (--skip-existing, every output exists); a DeepsepError when outputs
    exist that may not be replaced, or when the track's folder holds stems of another set of
    sources (voice/noise beside vocals/drums/bass/other), unless --overwrite."""
    if output.existing == "overwrite":
        return False
    present = [p for p in targets.values() if os.path.lexists(p)]
    if present and output.existing == "skip":
        if len(present) == len(targets):
            return True
        missing = next(p for p in targets.values() if p not in present)
        raise DeepsepError(f"{present[0]} exists but {missing.name} does not (an earlier run with other stems?): "
                           "--overwrite separates the file again")
    if present:
        raise DeepsepError(f"{present[0]} exists: --overwrite replaces the outputs, --skip-existing skips files "
                           "whose outputs all exist")
    other = next((p for p in others if os.path.lexists(p)), None)
    if other is not None:
        raise DeepsepError(f"{other.parent} holds stems of another model ({other.name}); writing "
                           f"{', '.join(targets)} there would mix two separations: use --filename "
                           '"{model}/{track}/{stem}.{ext}" to keep both apart, or --overwrite')
    return False


def output_bits(bits: int | None, int24: bool = False, float32: bool = False) -> int:
    """The sample size asked for by --bits, --int24 and --float32 (16 when none is given); a
    UsageError when they ask for different ones."""
    asked = {flag: b for flag, b in (("--bits", bits), ("--int24", 24 if int24 else None),
                                     ("--float32", 32 if float32 else None)) if b is not None}
    if len(set(asked.values())) > 1:
        raise UsageError(f"{' and '.join(asked)} ask for different sample sizes: give one")
    return next(iter(asked.values()), 16)


def clip_warning(output: OutputOptions) -> str | None:
    """The warning for --clip none with an integer output format, which cannot hold peaks over full scale."""
    if output.clip == "none" and subtype_for(output.fmt, output.bits)[1].startswith("PCM"):
        return (f"--clip none with {output.bits}-bit output: peaks over full scale will be clipped by the integer "
                "format (--float32 keeps them)")
    return None

"""Drum stems rendered from MIDI performances (e.g. the Groove MIDI Dataset in ``music/groove``).

Two renderers play each MIDI file, with the drummer's own velocities, cut to the MIDI's length
(the Roland TD-11 notes that General MIDI lacks, hi-hat edges and the second floor tom, mapped to
their GM neighbours first):

- :func:`soundfont_renderer`: FluidSynth (Debian ``fluidsynth``) with a General MIDI soundfont's
  drum kit, chosen per file from ``kits`` (GM drum-kit programs of bank 128: 0 Standard, 8 Room,
  16 Power, 24 Electronic, 25 TR-808, 32 Jazz, 40 Brush, 48 Orchestra in FluidR3_GM);
- :func:`hydrogen_renderer`: recorded kits in Hydrogen's format (Debian ``hydrogen-drumkits``),
  played by :mod:`deepsep.drumkit`, one kit per file.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np
import soundfile as sf

from .audio import sf_name
from .errors import DeepsepError

#: GM drum-kit programs (bank 128) that FluidR3_GM has
GM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
#: Roland TD-11 notes of the Groove MIDI Dataset that General MIDI does not define -> GM notes
TD11_TO_GM = {22: 42, 26: 46, 58: 43}
DRUM_CHANNEL = 9  # General MIDI channel 10
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


T = TypeVar("T")
#: a drum renderer: (MIDI file, its output name) -> (2, time) float32 at its sample rate
Renderer = Callable[[Path, str], np.ndarray]


def _name_hash(name: str) -> int:
    """A number from a file name, the same on every machine (not Python's salted hash)."""
    return int(hashlib.sha1(name.encode()).hexdigest(), 16)


def kit_for(name: str, kits: Sequence[T]) -> T:
    """The kit of a file: the same for the same name on every machine."""
    return kits[_name_hash(name) % len(kits)]


def prepared_midi(src: Path, dst: Path, kit: int) -> float:
    """Write ``src`` to ``dst`` with its drum notes on GM notes and ``kit`` selected on the drum
    channel (bank 128) at the start; return the performance's length in seconds."""
    import mido

    midi = mido.MidiFile(str(src))
    for track in midi.tracks:
        for i, msg in enumerate(track):
            if msg.type in ("note_on", "note_off") and msg.note in TD11_TO_GM:
                track[i] = msg.copy(note=TD11_TO_GM[msg.note])
    # FluidSynth plays channel 10 from bank 128 (the drum kits) whatever the bank select says
    midi.tracks[0].insert(0, mido.Message("program_change", channel=DRUM_CHANNEL, program=kit, time=0))
    midi.save(str(dst))
    return float(midi.length)


def render_midi(midi_path: str | Path, soundfont: str | Path, sample_rate: int = 44100,
                length: float | None = None) -> np.ndarray:
    """A MIDI file played by FluidSynth: (2, time) float32, cut or padded to ``length`` seconds
    (default: what FluidSynth renders)."""
    if shutil.which("fluidsynth") is None:
        raise DeepsepError("rendering MIDI needs FluidSynth, which is not installed (apt-get install fluidsynth)")
    if not Path(soundfont).is_file():
        raise DeepsepError(f"soundfont not found: {soundfont} (apt-get install fluid-soundfont-gm, or give --soundfont)")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "out.wav"
        cmd = ["fluidsynth", "-ni", "-q", "-g", "0.5", "-O", "float",
               "-F", str(wav), "-r", str(sample_rate), str(soundfont), str(midi_path)]
        # FluidSynth plays ~17x real time: a render that needs more CPU than this hangs on a note
        # (CPU time, not wall time, so that a busy machine does not stop a sound render); and its
        # files are capped near the expected length (a hung note renders silence fast: unbounded,
        # it filled 10 GB of disk here before the CPU limit stopped it)
        seconds = length or 300
        limit = int(60 + 2 * seconds)
        # float32 stereo + header, and at least 256 MB: FluidSynth's PulseAudio client sizes a 64 MB
        # shared-memory file at start, even when it renders to a file
        max_bytes = max(int((seconds + 60) * sample_rate * 2 * 4) + 4096, 256 << 20)
        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lambda: _limit_child(limit, max_bytes))
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGXFSZ):
            raise DeepsepError(f"{midi_path}: fluidsynth did not finish within {limit} s of CPU and "
                               f"{max_bytes >> 20} MB of output (a note never released?)")
        if proc.returncode != 0 or not wav.is_file():
            raise DeepsepError(f"{midi_path}: fluidsynth failed ({(proc.stderr or proc.stdout).strip()[:200]})")
        audio, rate = sf.read(sf_name(wav), dtype="float32", always_2d=True)
    audio = audio.T[:2]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if length is None:
        return audio
    n = int(round(length * sample_rate))
    return np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]


def _limit_child(seconds: int, max_bytes: int) -> None:
    """In the child process: at most ``seconds`` of CPU time (then SIGXCPU) and files of at most
    ``max_bytes`` (then SIGXFSZ)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CPU, (seconds, seconds + 5))
    resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))


def render_drums(midi_path: str | Path, soundfont: str | Path, kit: int = 0, sample_rate: int = 44100) -> np.ndarray:
    """The drum performance of a MIDI file as audio: (2, time) float32, time = the MIDI's length."""
    with tempfile.TemporaryDirectory() as tmp:
        mid = Path(tmp) / "in.mid"
        length = prepared_midi(Path(midi_path), mid, kit)
        return render_midi(mid, soundfont, sample_rate, length)


def soundfont_renderer(soundfont: str | Path, kits: Sequence[int] = GM_KITS, sample_rate: int = 44100) -> Renderer:
    """FluidSynth with ``soundfont``: each file with one of its GM drum kits (:func:`kit_for`)."""
    if not Path(soundfont).is_file():
        raise DeepsepError(f"soundfont not found: {soundfont} (apt-get install fluid-soundfont-gm, or give --soundfont)")
    return lambda midi, name: render_drums(midi, soundfont, kit_for(name, kits), sample_rate)


def hydrogen_renderer(kit_dirs: Sequence[str | Path], sample_rate: int = 44100) -> Renderer:
    """The recorded kits of ``kit_dirs`` (Hydrogen kit folders, see :func:`deepsep.drumkit.find_kits`):
    each file with one of them (:func:`kit_for`) and its own random stream (seeded by its name), so
    a render is the same on every machine. Kits are decoded when first used."""
    from .drumkit import DrumKit, drum_notes, load_kit, render_notes

    if not kit_dirs:
        raise DeepsepError("no Hydrogen drum kits given")
    loaded: dict[Path, DrumKit] = {}

    def render(midi: Path, name: str) -> np.ndarray:
        folder = Path(kit_for(name, list(kit_dirs)))
        if folder not in loaded:
            loaded[folder] = load_kit(folder, sample_rate)
        notes, length = drum_notes(midi, TD11_TO_GM)
        return render_notes(loaded[folder], notes, length, np.random.default_rng(_name_hash(name) % 2**63))

    return render


def render_folder(midi_dir: str | Path, out_dir: str | Path, render: Renderer, sample_rate: int = 44100,
                  limit: int | None = None, progress=None) -> list[Path]:
    """Render every ``*.mid`` under ``midi_dir`` (sorted; the first ``limit``) with ``render``
    (audio at ``sample_rate``) into ``out_dir`` as ``<path with _ for />.flac`` (24-bit, peak
    0.99); files already there are kept (a run can be resumed). Returns the output files."""
    midi_dir, out_dir = Path(midi_dir), Path(out_dir)
    files = sorted(midi_dir.rglob("*.mid"))[:limit]
    if not files:
        raise DeepsepError(f"{midi_dir}: no .mid files")
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.glob("*.partial.flac"):  # a render that was killed half-way
        stale.unlink()
    outputs = []
    for i, f in enumerate(files):
        name = "_".join(f.relative_to(midi_dir).with_suffix("").parts)
        dst = out_dir / f"{name}.flac"
        if not dst.is_file():
            audio = render(f, name)
            peak = float(np.abs(audio).max())
            if peak > 0:
                tmp = dst.with_name(dst.name + ".partial.flac")
                sf.write(sf_name(tmp), (audio * (0.99 / peak)).T, sample_rate, subtype="PCM_24")
                tmp.replace(dst)
        if dst.is_file():
            outputs.append(dst)
        if progress:
            progress(i + 1, len(files))
    return outputs

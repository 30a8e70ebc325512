"""Drum stems rendered from MIDI performances (e.g. the Groove MIDI Dataset in ``music/groove``).

Each MIDI file is played by FluidSynth (Debian ``fluidsynth``) with a General MIDI soundfont's
drum kit, chosen per file from ``kits`` (GM drum-kit programs of bank 128: 0 Standard, 8 Room,
16 Power, 24 Electronic, 25 TR-808, 32 Jazz, 40 Brush, 48 Orchestra in FluidR3_GM), with the
drummer's own velocities, and cut to the MIDI's length. The Roland TD-11 notes that General MIDI
lacks (hi-hat edges, the second floor tom) are mapped to their GM neighbours first.
"""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from .errors import DeepsepError

#: GM drum-kit programs (bank 128) that FluidR3_GM has
GM_KITS = (0, 8, 16, 24, 25, 32, 40, 48)
#: Roland TD-11 notes of the Groove MIDI Dataset that General MIDI does not define -> GM notes
TD11_TO_GM = {22: 42, 26: 46, 58: 43}
DRUM_CHANNEL = 9  # General MIDI channel 10
DEFAULT_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")


def kit_for(name: str, kits: tuple[int, ...]) -> int:
    """The kit of a file: the same for the same name on every machine (not Python's salted hash)."""
    return kits[int(hashlib.sha1(name.encode()).hexdigest(), 16) % len(kits)]


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
        # (CPU time, not wall time, so that a busy machine does not stop a sound render); and it
        # may not write more than a minute past the expected length (a hung note renders silence
        # fast: unbounded, it fills the disk before the CPU limit stops it)
        seconds = length or 300
        limit = int(60 + 2 * seconds)
        max_bytes = int((seconds + 60) * sample_rate * 2 * 4) + 4096  # float32 stereo + header
        proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=lambda: _limit_child(limit, max_bytes))
        if proc.returncode in (-signal.SIGXCPU, -signal.SIGKILL, -signal.SIGXFSZ):
            raise DeepsepError(f"{midi_path}: fluidsynth did not finish within {limit} s of CPU and "
                               f"{max_bytes >> 20} MB of output (a note never released?)")
        if proc.returncode != 0 or not wav.is_file():
            raise DeepsepError(f"{midi_path}: fluidsynth failed ({(proc.stderr or proc.stdout).strip()[:200]})")
        audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
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


def render_folder(midi_dir: str | Path, out_dir: str | Path, soundfont: str | Path, kits: tuple[int, ...] = GM_KITS,
                  sample_rate: int = 44100, limit: int | None = None, progress=None) -> list[Path]:
    """Render every ``*.mid`` under ``midi_dir`` (sorted; the first ``limit``) into ``out_dir`` as
    ``<path with _ for />.flac`` (24-bit, peak 0.99), each with its kit (:func:`kit_for`); files
    already there are kept (a run can be resumed). Returns the output files."""
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
            audio = render_drums(f, soundfont, kit_for(name, kits), sample_rate)
            peak = float(np.abs(audio).max())
            if peak > 0:
                tmp = dst.with_name(dst.name + ".partial.flac")
                sf.write(str(tmp), (audio * (0.99 / peak)).T, sample_rate, subtype="PCM_24")
                tmp.replace(dst)
        if dst.is_file():
            outputs.append(dst)
        if progress:
            progress(i + 1, len(files))
    return outputs

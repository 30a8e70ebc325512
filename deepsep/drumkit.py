"""Sampled drum kits in Hydrogen's format, and a MIDI drum sampler that plays them.

A Hydrogen kit is a folder with ``drumkit.xml`` and the recorded one-shots it names (Debian's
``hydrogen-drumkits``: acoustic kits recorded with several velocity layers, and electronic ones).
Kits number their instruments freely, so instruments are matched to General MIDI drum notes by
*role* (kick, snare, closed hi-hat, ...), read from their names (:func:`role_of`); a note whose
role the kit lacks plays a neighbour (:data:`FALLBACK`: a pedal hi-hat plays the closed one, a
splash the crash), or nothing. Each note plays the layer of its velocity, scaled by the velocity
as Hydrogen does, and a hi-hat note chokes the hi-hat still ringing (one hand, one hi-hat).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import resample, sf_name
from .errors import DeepsepError

#: General MIDI drum notes (after the Roland TD-11 mapping of :mod:`deepsep.drums`) -> role
GM_ROLES = {
    35: "kick", 36: "kick", 37: "stick", 38: "snare", 39: "clap", 40: "rimshot",
    41: "tom_low", 43: "tom_low", 45: "tom_mid", 47: "tom_mid", 48: "tom_high", 50: "tom_high",
    42: "hat_closed", 44: "hat_pedal", 46: "hat_open",
    49: "crash", 52: "crash", 55: "crash", 57: "crash", 51: "ride", 59: "ride", 53: "ride_bell",
    54: "tambourine", 56: "cowbell",
}
#: a role the kit lacks -> the roles that play it instead, in order
FALLBACK = {
    "rimshot": ("snare",), "stick": ("snare",), "clap": ("snare",),
    "hat_pedal": ("hat_closed",), "hat_open": ("hat_closed",),
    "tom_low": ("tom_mid", "tom_high"), "tom_mid": ("tom_low", "tom_high"), "tom_high": ("tom_mid", "tom_low"),
    "crash": ("ride",), "ride": ("crash",), "ride_bell": ("ride", "crash"),
}
#: what a kit must have to play a drum performance
REQUIRED_ROLES = ("kick", "snare", "hat_closed")
HAT_ROLES = ("hat_closed", "hat_pedal", "hat_open")
CHOKE_FADE = 0.01  # seconds: a choked hi-hat fades out over this


def role_of(name: str) -> str | None:
    """The GM role of an instrument from its name ('Hi-Hat Closed (Paiste 14")' -> 'hat_closed'),
    or None (effects, hand percussion, unnamed slots)."""
    n = name.lower().replace("-", " ").replace("_", " ")
    words = set(n.replace("(", " ").replace(")", " ").split())
    if "kick" in n or "bass drum" in n or "bassdrum" in n:
        return "kick"
    if "hat" in n or "hh" in words:
        if "pedal" in n or "pd" in words:
            return "hat_pedal"
        if "open" in n or "op" in words or "opened" in n:
            return "hat_open"
        if "clos" in n or "cl" in words:
            return "hat_closed"
        return None  # swish, choke, free: no GM note of its own
    if "snare" in n:
        if "roll" in n:
            return None
        return "rimshot" if "rimshot" in n else "snare"
    if "stick" in n or "rim click" in n:
        return "stick"
    if "clap" in n:
        return "clap"
    if "tom" in words or "tomhi" in n or n.startswith("tom"):
        if "floor" in n or "low" in n or "lo" in words:
            return "tom_low"
        if "hi" in n or "high" in n or "1" in words:
            return "tom_high"
        return "tom_mid"
    if "cowbell" in n:
        return "cowbell"
    if "bell" in n or "cup" in n:
        return "ride_bell" if ("ride" in n or "cup" in n) else None
    if "ride" in n:
        return "ride"
    if "crash" in n or "splash" in n or "china" in n or "cymbal" in n:
        return "crash"
    if "tambourine" in n and "pedal" not in n:
        return "tambourine"
    return None


@dataclass
class Layer:
    """One recorded sample of an instrument, played for velocities in ``[low, high]`` (0..1)."""

    low: float
    high: float
    gain: float
    audio: np.ndarray  # (2, time) float32 at the kit's sample rate


@dataclass
class Instrument:
    name: str
    role: str
    gain: float  # the instrument's gain times its volume
    layers: list[Layer]

    def layer(self, velocity: float) -> Layer:
        """The layer that plays ``velocity`` (0..1): the one whose range holds it, else the nearest."""
        for la in self.layers:
            if la.low <= velocity <= la.high:
                return la
        return min(self.layers, key=lambda la: min(abs(velocity - la.low), abs(velocity - la.high)))


@dataclass
class DrumKit:
    name: str
    sample_rate: int
    instruments: dict[str, list[Instrument]]  # role -> the kit's instruments of that role

    def for_role(self, role: str) -> list[Instrument]:
        """The instruments that play ``role``: the kit's own, else its fallback's (possibly none)."""
        for r in (role, *FALLBACK.get(role, ())):
            if self.instruments.get(r):
                return self.instruments[r]
        return []


def _namespace(root: ET.Element) -> str:
    """The ``{uri}`` prefix of the XML's tags (Hydrogen's kits use one), or ''."""
    return root.tag.split("}")[0] + "}" if root.tag.startswith("{") else ""


def _text(el: ET.Element, tag: str, ns: str, default: str = "") -> str:
    found = el.findtext(ns + tag)
    return default if found is None else found.strip()


def _read_sample(path: Path, sample_rate: int, pan: tuple[float, float]) -> np.ndarray:
    audio, rate = sf.read(sf_name(path), dtype="float32", always_2d=True)
    audio = audio.T[:2]
    if audio.shape[0] == 1:
        audio = np.repeat(audio, 2, axis=0)
    if rate != sample_rate:
        audio = resample(audio, rate, sample_rate)
    return (audio * np.array(pan, dtype=np.float32)[:, None]).astype(np.float32)


def load_kit(folder: str | Path, sample_rate: int = 44100) -> DrumKit:
    """A Hydrogen kit (``folder/drumkit.xml`` and its samples) with its samples decoded, stereo,
    at ``sample_rate`` and panned. Raises DeepsepError when the XML is unreadable or the kit
    lacks a kick, a snare or a closed hi-hat."""
    folder = Path(folder)
    try:
        root = ET.parse(folder / "drumkit.xml").getroot()
    except (OSError, ET.ParseError) as e:
        raise DeepsepError(f"{folder}: not a Hydrogen drum kit ({e})") from None
    ns = _namespace(root)
    instruments: dict[str, list[Instrument]] = {}
    for el in root.iter(ns + "instrument"):
        role = role_of(_text(el, "name", ns))
        if role is None or _text(el, "isMuted", ns) == "true":
            continue
        pan = (float(_text(el, "pan_L", ns, "1")), float(_text(el, "pan_R", ns, "1")))
        layers = []
        for la in el.iter(ns + "layer"):
            f = folder / _text(la, "filename", ns)
            if f.is_file():
                layers.append(Layer(float(_text(la, "min", ns, "0")), float(_text(la, "max", ns, "1")),
                                    float(_text(la, "gain", ns, "1")), _read_sample(f, sample_rate, pan)))
        single = _text(el, "filename", ns)  # old kits: one sample, no layers
        if not layers and single and (folder / single).is_file():
            layers.append(Layer(0.0, 1.0, 1.0, _read_sample(folder / single, sample_rate, pan)))
        if layers:
            gain = float(_text(el, "gain", ns, "1")) * float(_text(el, "volume", ns, "1"))
            instruments.setdefault(role, []).append(Instrument(_text(el, "name", ns), role, gain, layers))
    missing = [r for r in REQUIRED_ROLES if not instruments.get(r)]
    if missing:
        raise DeepsepError(f"{folder}: the kit has no {', '.join(missing)}")
    return DrumKit(_text(root, "name", ns) or folder.name, sample_rate, instruments)


def find_kits(root: str | Path) -> list[Path]:
    """The folders under ``root`` (sorted) that hold a Hydrogen kit able to play a drum
    performance (see :data:`REQUIRED_ROLES`; hand-percussion kits are left out)."""
    found = []
    for xml in sorted(Path(root).rglob("drumkit.xml")):
        try:
            names = [role_of(n) for n in _names(xml.read_text(errors="replace"))]
        except (OSError, ET.ParseError):  # unreadable: not a kit to play
            continue
        if all(r in names for r in REQUIRED_ROLES):
            found.append(xml.parent)
    return found


def _names(xml_text: str) -> list[str]:
    root = ET.fromstring(xml_text)
    ns = _namespace(root)
    return [_text(el, "name", ns) for el in root.iter(ns + "instrument")]


def render_notes(kit: DrumKit, notes: Sequence[tuple[float, int, int]], length: float,
                 rng: np.random.Generator) -> np.ndarray:
    """Play ``notes`` ((seconds, GM note, MIDI velocity 1..127), any order) on ``kit``:
    (2, round(length * rate)) float32. Each role plays one of the kit's instruments of that role,
    drawn once per call; each note its velocity's layer times velocity, +-1 dB at random (no two
    hits alike); hi-hat notes choke the one before."""
    sr = kit.sample_rate
    out = np.zeros((2, int(round(length * sr))), dtype=np.float32)
    chosen: dict[str, Instrument | None] = {}
    for r in sorted(set(GM_ROLES.values())):  # sorted: the same draws in every process (str hashes are salted)
        options = kit.for_role(r)
        chosen[r] = options[int(rng.integers(len(options)))] if options else None
    hats = np.array(sorted({int(round(t * sr)) for t, note, _ in notes if GM_ROLES.get(note) in HAT_ROLES}), dtype=np.int64)
    fade = max(1, int(CHOKE_FADE * sr))
    for t, note, velocity in sorted(notes):
        role = GM_ROLES.get(note)
        inst = chosen.get(role) if role else None
        start = int(round(t * sr))
        if inst is None or velocity <= 0 or start >= out.shape[1]:
            continue
        v = min(velocity, 127) / 127.0
        layer = inst.layer(v)
        x = layer.audio * (v * layer.gain * inst.gain * 10 ** (rng.uniform(-1.0, 1.0) / 20))
        if role in HAT_ROLES:  # cut at the next hi-hat note, with a short fade
            i = int(np.searchsorted(hats, start, side="right"))  # the next hi-hat onset after this one
            if i < len(hats) and hats[i] - start < x.shape[1]:
                n = int(hats[i]) - start
                x = x[:, :n + fade].copy()
                x[:, n:] *= np.linspace(1.0, 0.0, x.shape[1] - n, dtype=np.float32)
        n = min(x.shape[1], out.shape[1] - start)
        out[:, start:start + n] += x[:, :n]
    return out


def drum_notes(midi_path: str | Path, note_map: dict[int, int] | None = None) -> tuple[list[tuple[float, int, int]], float]:
    """The note-ons of a MIDI file as (seconds, note, velocity), notes mapped by ``note_map``, and
    the file's length in seconds."""
    import mido

    try:
        midi = mido.MidiFile(str(midi_path))
    except (OSError, ValueError, EOFError) as e:
        raise DeepsepError(f"{midi_path}: unreadable MIDI file ({e})") from None
    notes, now = [], 0.0
    for msg in midi:  # merged tracks, times in seconds between messages
        now += msg.time
        if msg.type == "note_on" and msg.velocity > 0:
            notes.append((now, (note_map or {}).get(msg.note, msg.note), int(msg.velocity)))
    return notes, float(midi.length)

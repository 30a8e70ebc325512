"""Music from Debian's free packages: downloaded with ``apt-get download`` and unpacked with
``dpkg-deb`` (no root, nothing installed) into a cache folder, each package's licence beside it.

What a package gives (see :data:`PACKAGES`):

- ``mixtures``: full mixes (game soundtracks), for the semi-supervised losses; files shorter than
  :data:`MIN_SECONDS` (jingles) or coded below :data:`MIN_KBPS` (low-quality copies) are skipped;
- ``fof``: Frets on Fire songs, each ``song.ogg`` (everything but the lead guitar) and
  ``guitar.ogg`` (the guitar alone): the guitar goes to ``other/`` (an ``other`` stem alone) and
  their sum, the song as heard, to ``mixtures/``;
- ``midi``: General MIDI songs, rendered per part with FluidSynth (:mod:`deepsep.midistems`) into
  track folders ``rendered/<package>/<song>/{drums,bass,other,vocals}.flac``.
- ``mma``: the MMA program and its groove library: :data:`MMA_SONGS` accompaniment songs written
  from made-up chord charts (:mod:`deepsep.accompaniment`), rendered like ``midi`` into
  ``rendered/mma/<song>/``.
- ``loops``: recorded drum loops, each repeated to at least :data:`MIN_SECONDS` (loops are made to
  repeat) into ``drums/<package>/<loop>.flac``: drum stems alone, for ``train music --drums``.
- ``drumkits``: recorded drum kits in Hydrogen's format (``drumkits/<package>/<kit>/``), the
  kits that can play a drum performance (:func:`deepsep.drumkit.find_kits`), for ``deepsep data
  drums --hydrogen``.

Layout of the output folder: ``mixtures/<package>/...``, ``other/<package>/<song>.ogg``,
``drums/<package>/<loop>.flac``,
``rendered/<package>/<song>/``, ``drumkits/<package>/<kit>/``,
``licences/<package>.copyright`` and ``sources/<package>.json`` (version, the .deb's sha256,
licence, every file kept and every file skipped with the reason), written last: a package with
its ``sources/`` record is done, and a rerun skips it. No file whose name is a MUSDB18 test song's
is ever kept.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import AUDIO_EXTENSIONS, sf_name
from .drums import DEFAULT_SOUNDFONT
from .errors import DeepsepError

MIN_SECONDS = 30.0
MIN_KBPS = 64.0
MMA_SONGS = 120  # accompaniment songs written with mma
MMA_BARS = 24  # bars a song: ~50 s at the median tempo (110 bpm, 4/4)

#: the 50 songs of MUSDB18's test set: never used for training
MUSDB18_TEST = frozenset({
    "AM Contra - Heart Peripheral", "Al James - Schoolboy Facination", "Angels In Amplifiers - I'm Alright",
    "Arise - Run Run Run", "BKS - Bulldozer", "BKS - Too Much", "Ben Carrigan - We'll Talk About It All Tonight",
    "Bobby Nobody - Stitch Up", "Buitraker - Revo X", "Carlos Gonzalez - A Place For Us", "Cristina Vane - So Easy",
    "Detsky Sad - Walkie Talkie", "Enda Reilly - Cur An Long Ag Seol", "Forkupines - Semantics",
    "Georgia Wonder - Siren", "Girls Under Glass - We Feel Alright", "Hollow Ground - Ill Fate",
    "James Elder & Mark M Thompson - The English Actor", "Juliet's Rescue - Heartbeats",
    "Little Chicago's Finest - My Own", "Louis Cressy Band - Good Time", "Lyndsey Ollard - Catching Up",
    "M.E.R.C. Music - Knockout", "Moosmusic - Big Dummy Shake", "Motor Tapes - Shore", "Mu - Too Bright",
    "Nerve 9 - Pray For The Rain", "PR - Happy Daze", "PR - Oh No", "Punkdisco - Oral Hygiene", "Raft Monk - Tiring",
    "Sambasevam Shanmugam - Kaathaadi", "Secretariat - Borderline", "Secretariat - Over The Top",
    "Side Effects Project - Sing With Me", "Signe Jakobsen - What Have You Done To Me", "Skelpolu - Resurrection",
    "Speak Softly - Broken Man", "Speak Softly - Like Horses", "The Doppler Shift - Atrophy",
    "The Easton Ellises (Baumi) - SDRNR", "The Easton Ellises - Falcon 69", "The Long Wait - Dark Horses",
    "The Mountaineering Club - Mallory", "The Sunshine Garcia Band - For I Am The Moon", "Timboz - Pony",
    "Tom McKenzie - Directions", "Triviul feat. The Fiend - Widow", "We Fell From The Sky - Not You", "Zeno - Signs",
})


def _words(text: str) -> str:
    """Lower-case letters and digits, single-spaced: how names are compared."""
    return " ".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


_TEST_NAMES = frozenset(_words(n) for n in MUSDB18_TEST)
_TEST_TITLES = frozenset(_words(n.split(" - ", 1)[1]) for n in MUSDB18_TEST)


def is_musdb_test_song(path: str | Path) -> bool:
    """Whether a file's name (or its folder's) is a MUSDB18 test song: its "Artist - Title" within
    the name, or the name exactly the title."""
    for part in (Path(path).stem, Path(path).parent.name):
        w = _words(part)
        if w in _TEST_TITLES or any(n in w for n in _TEST_NAMES):
            return True
    return False


@dataclass(frozen=True)
class Package:
    """A Debian package and what to take from it: ``globs`` select its music files (paths as
    ``dpkg-deb -c`` lists them; ``*`` crosses ``/``), ``kind`` what they give (``mixtures``,
    ``fof``, ``midi``, ``mma``, ``loops``, ``drumkits``: see above); where the music sits in a zip
    archive (``.pk3``, ``.zip``), ``globs`` select the archive and ``inner`` the music in it."""

    name: str
    kind: str
    globs: tuple[str, ...]
    licence: str
    exclude: tuple[str, ...] = ()
    inner: tuple[str, ...] = ()
    inner_exclude: tuple[str, ...] = ()


_FOF = "./usr/share/games/fretsonfire/data/songs/{}/*/*.ogg"

#: what `deepsep data debian` builds (music folders found with ``dpkg-deb -c``; licences from each
#: package's copyright file, copied beside the music). Left out: warzone2100-music (48 kbit/s Opus).
PACKAGES: tuple[Package, ...] = (
    Package('ufoai-music', "mixtures", ('./usr/share/games/ufoai/base/0music.pk3',), 'CC-BY-SA-3.0 / GPL-2 / CC-BY-3.0 / public domain, file by file (see its copyright)', inner=('music/*.ogg',), inner_exclude=('music/dynamictest-*.ogg',)),
    Package('0ad-data', "mixtures", ('./usr/share/games/0ad/mods/public/public.zip',), 'CC-BY-SA-3.0', inner=('audio/music/*.ogg',)),
    Package('wesnoth-1.16-music', "mixtures", ('./usr/share/games/wesnoth/1.16/data/core/music/*.ogg',), 'GPL-2+', exclude=('./usr/share/games/wesnoth/1.16/data/core/music/silence.ogg', './usr/share/games/wesnoth/1.16/data/core/music/frantic-old.ogg')),
    Package('naev-data', "mixtures", ('./usr/share/naev/dat/snd/music/*.ogg',), 'GPL-2+ / GPL-3 or CC-BY-3.0 / CC-BY-SA-3.0 / CC-BY-3.0 / GPL-3+, file by file'),
    Package('supertux-data', "mixtures", ('./usr/share/games/supertux2/music/*.ogg',), 'GPL-2+', exclude=('./usr/share/games/supertux2/music/retro/cave_old.ogg', './usr/share/games/supertux2/music/retro/fortress_old.ogg')),
    Package('hedgewars-data', "mixtures", ('./usr/share/games/hedgewars/Data/Music/*.ogg',), 'GPL-2', exclude=('./usr/share/games/hedgewars/Data/Music/olympics_sd.ogg',)),
    Package('widelands-data', "mixtures", ('./usr/share/games/widelands/data/music/*.ogg',), 'GPL-2+ (ingame_24-26: CC-BY-SA-3.0)', exclude=('./usr/share/games/widelands/data/music/menu.ogg',)),
    Package('nexuiz-music', "mixtures", ('./usr/share/games/nexuiz/data/music.pk3',), 'GPL-2+', inner=('sound/cdtracks/*.ogg',), inner_exclude=('sound/cdtracks/thunder.ogg',)),
    Package('berusky2-data', "mixtures", ('./usr/share/games/berusky2/music/*.ogg',), 'GPL-2+'),
    Package('colobot-common-sounds', "mixtures", ('./usr/share/games/colobot/music/*.ogg',), 'GPL-3+'),
    Package('singularity-music', "mixtures", ('./usr/share/games/singularity/music/*.ogg',), 'CC-BY-SA-3.0'),
    Package('marsshooter-data', "mixtures", ('./usr/share/games/marsshooter/audio/music/*.ogg', './usr/share/games/marsshooter/audio/menu.ogg', './usr/share/games/marsshooter/audio/tutorial.ogg'), 'CC-BY-SA-3.0'),
    Package('supertuxkart-data', "mixtures", ('./usr/share/games/supertuxkart/data/music/*.ogg', './usr/share/games/supertuxkart/data/tracks/ancient_colosseum_labyrinth/Battle_Theme_1.ogg', './usr/share/games/supertuxkart/data/tracks/battleisland/Gran_Paradiso_Unused_-_TuxKart_5a_Gowns_Bow_Remix.ogg', './usr/share/games/supertuxkart/data/tracks/introcutscene2/intro2.ogg'), 'CC-BY-SA-3.0 / GPL-3+ / CC-BY-SA-4.0 / CC-BY-4.0, file by file', exclude=('./usr/share/games/supertuxkart/data/music/*_fast.ogg', './usr/share/games/supertuxkart/data/music/farm_f.ogg')),
    Package('drascula-music', "mixtures", ('./usr/share/scummvm/drascula/audio/*.ogg',), 'Drascula licence (redistribution and changes allowed; not a standard free-culture licence)'),
    Package('freedroidrpg-data', "mixtures", ('./usr/share/freedroidrpg/data/sound/music/*.ogg', './usr/share/freedroidrpg/data/base/titles/*.ogg', './usr/share/freedroidrpg/data/storyline/act1/titles/*.ogg'), 'GPL-2+'),
    Package('flare-game', "mixtures", ('./usr/share/games/flare/mods/fantasycore/music/*.ogg',), 'CC-BY-SA-3.0+', exclude=('./usr/share/games/flare/mods/fantasycore/music/wind_ambient.ogg',)),
    Package("fretsonfire-songs-muldjord", "fof", (_FOF.format("muldjord"),), "CC-BY-SA-3.0 (El Senator / Muldjord)"),
    Package("fretsonfire-songs-sectoid", "fof", (_FOF.format("sectoid"),), "MIT/Expat (Carlos Viola Iborra)"),
    Package("openttd-openmsx", "midi", ("./usr/share/games/openttd/baseset/openmsx/*.mid",), "GPL-2"),
    Package("planetblupi-music-midi", "midi", ("./usr/share/planetblupi/music/*.mid",), "GPL-3+"),
    Package("mma", "mma", ("./usr/bin/mma", "./usr/share/mma/*"),
            "GPL-2+ (MMA and its groove library; the chord charts are deepsep's)"),
    Package("sonic-pi-samples", "loops", tuple(f"./usr/share/sonic-pi/samples/loop_{n}.flac" for n in (
        "amen", "amen_full", "breakbeat", "compus", "garzul", "industrial", "mika", "perc1", "perc2", "safari",
        "tabla")), "CC0 (loop_perc1, loop_perc2: CC-BY-SA-4.0)"),
    Package("hydrogen-drumkits", "drumkits", ("./usr/share/hydrogen/data/drumkits/*",),
            "GPL-2 / GPL-2+ / CC-BY-SA-3.0 / CC-BY-3.0 / CC0, kit by kit (see its copyright)"),
)


def find_package(name: str) -> Package:
    for p in PACKAGES:
        if p.name == name:
            return p
    raise DeepsepError(f"unknown package {name!r}; known: {', '.join(p.name for p in PACKAGES)}")


def _run(cmd: Sequence[str], **kw) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(list(cmd), check=True, capture_output=True, **kw)
    except FileNotFoundError:
        raise DeepsepError(f"{cmd[0]} not found: building Debian music data needs apt-get and dpkg-deb "
                           "(a Debian or Ubuntu system)") from None
    except subprocess.CalledProcessError as e:
        lines = [ln for ln in e.stderr.decode(errors="replace").splitlines() if ln.startswith(("E:", "dpkg"))]
        raise DeepsepError(f"{' '.join(cmd[:2])} {cmd[-1]} failed: {(lines or [f'exit status {e.returncode}'])[0]}") from None


def download(package: str, debs: Path) -> Path:
    """The package's .deb in ``debs`` (``apt-get download`` unless one is there already)."""
    debs.mkdir(parents=True, exist_ok=True)
    have = sorted(debs.glob(f"{package}_*.deb"))
    if not have:
        _run(["apt-get", "download", package], cwd=debs)
        have = sorted(debs.glob(f"{package}_*.deb"))
        if not have:
            raise DeepsepError(f"apt-get download {package} left no {package}_*.deb in {debs}")
    return have[-1]


def members(deb: Path) -> list[str]:
    """The paths of the regular files in a .deb (as ``dpkg-deb -c`` lists them: ``./usr/...``)."""
    out = _run(["dpkg-deb", "-c", str(deb)]).stdout.decode(errors="replace")
    return [line.split(None, 5)[5].split(" -> ")[0] for line in out.splitlines() if line.startswith("-")]


def _take(paths: Sequence[str], globs: Sequence[str], exclude: Sequence[str]) -> list[str]:
    return [p for p in paths if any(fnmatch.fnmatchcase(p, g) for g in globs)
            and not any(fnmatch.fnmatchcase(p, g) for g in exclude)]


def select(paths: Sequence[str], package: Package) -> list[str]:
    """The member paths that the package's globs take and its excludes leave."""
    return _take(paths, package.globs, package.exclude)


def unzip_music(archive: Path, package: Package, dest: Path) -> list[tuple[str, Path]]:
    """The music files of a zip archive that ``package.inner`` selects, unpacked into ``dest``:
    (path in the archive, file) pairs."""
    import zipfile

    out = []
    with zipfile.ZipFile(archive) as z:
        for name in _take([i.filename for i in z.infolist() if not i.is_dir()], package.inner, package.inner_exclude):
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            with z.open(name) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
            out.append((name, target))
    return out


def extract(deb: Path, paths: Sequence[str], dest: Path) -> None:
    """Unpack the given member paths of ``deb`` into ``dest`` (``dpkg-deb --fsys-tarfile | tar``)."""
    dest.mkdir(parents=True, exist_ok=True)
    tar = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    try:
        subprocess.run(["tar", "-x", "-C", str(dest), "-f", "-", *paths], stdin=tar.stdout, check=True,
                       capture_output=True)
    except subprocess.CalledProcessError as e:
        raise DeepsepError(f"unpacking {deb.name} failed: {e.stderr.decode(errors='replace').strip()[:200]}") from None
    finally:
        tar.stdout.close()  # type: ignore[union-attr]
        tar.wait()


def audio_check(path: Path) -> tuple[str | None, float]:
    """(why a music file is not kept: too short, too low a bitrate, a MUSDB18 test song; or None,
    its duration in seconds)."""
    import soundfile as sf

    if is_musdb_test_song(path):
        return "a MUSDB18 test song's name", 0.0
    try:
        info = sf.info(sf_name(path))
    except RuntimeError:
        return "not readable audio", 0.0
    if info.duration < MIN_SECONDS:
        return f"{info.duration:.0f} s < {MIN_SECONDS:.0f} s", info.duration
    kbps = path.stat().st_size * 8 / max(info.duration, 1e-9) / 1000
    if kbps < MIN_KBPS:
        return f"{kbps:.0f} kbit/s < {MIN_KBPS:.0f}", info.duration
    return None, info.duration


def _flat_name(member: str, common: str) -> str:
    """A member path below the package's music folder, as one file name (``a/b.ogg`` -> ``a__b.ogg``)."""
    rel = member[len(common):].lstrip("/") if member.startswith(common) else Path(member).name
    return rel.replace("/", "__")


def _seconds(path: Path) -> float:
    import soundfile as sf

    return sf.info(sf_name(path)).duration


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _sum_to_flac(a: Path, b: Path, out: Path) -> float:
    """Write the sum of two audio files (same rate) as 24-bit FLAC, cut to the shorter one, scaled
    down to a peak of 1 where it would clip; return that gain (1.0 mostly)."""
    import soundfile as sf

    x, ra = sf.read(sf_name(a), dtype="float32", always_2d=True)
    y, rb = sf.read(sf_name(b), dtype="float32", always_2d=True)
    if ra != rb:
        raise DeepsepError(f"{a} and {b} have different sample rates ({ra}, {rb})")
    n = min(len(x), len(y))
    mix = x[:n] + y[:n]
    peak = float(np.abs(mix).max()) if n else 0.0
    gain = 1 / peak if peak > 1 else 1.0
    sf.write(sf_name(out), mix * gain, ra, subtype="PCM_24")
    return gain


def build_package(package: Package, out: Path, debs: Path, soundfont: Path = DEFAULT_SOUNDFONT) -> dict:
    """Download, unpack and sort one package into ``out``; return (and write) its sources record."""
    record_path = out / "sources" / f"{package.name}.json"
    if record_path.is_file():
        return json.loads(record_path.read_text())
    deb = download(package.name, debs)
    paths = select(members(deb), package)
    if not paths:
        raise DeepsepError(f"{deb.name}: no file matches {', '.join(package.globs)} (the package changed?)")
    out.mkdir(parents=True, exist_ok=True)
    for stale in out.glob(f".{package.name}-*"):  # what a killed run left unpacked
        shutil.rmtree(stale, ignore_errors=True)
    with tempfile.TemporaryDirectory(prefix=f".{package.name}-", dir=out) as tmp:
        root = Path(tmp) / "deb"
        doc = f"./usr/share/doc/{package.name}/copyright"
        extract(deb, [*paths, doc], root)
        staged = Path(tmp) / "staged"
        if package.kind == "midi":  # rendered straight into place, song by song (resumable)
            kept, skipped = _render_midi(package, root, paths, out, soundfont)
        elif package.kind == "mma":
            kept, skipped = _render_mma(package, root, Path(tmp) / "midi", out, soundfont)
        elif package.kind == "fof":
            kept, skipped = _stage_fof(package, root, paths, staged)
        elif package.kind == "drumkits":
            kept, skipped = _stage_drumkits(package, root, staged)
        elif package.kind == "loops":
            kept, skipped = _stage_loops(package, root, paths, staged)
        else:
            kept, skipped = _stage_mixtures(package, root, paths, staged, Path(tmp) / "zip")
        (staged / "licences").mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / doc, staged / "licences" / f"{package.name}.copyright")
        _move_staged(package, staged, out)
    record = {"package": package.name, "deb": deb.name, "sha256": _sha256(deb), "kind": package.kind,
              "licence": package.licence, "kept": kept, "skipped": skipped}
    _write_json(record_path, record)
    return record


def _render_midi(package: Package, root: Path, paths: Sequence[str], out: Path,
                 soundfont: Path) -> tuple[list[dict], list[dict]]:
    """(kept, skipped) of a MIDI package: each song rendered into ``out/rendered/<package>/<song>/``
    but MUSDB18 test songs."""
    from .midistems import render_songs

    songs = sorted(root / m for m in paths)
    skipped = [{"file": m.name, "why": "a MUSDB18 test song's name"} for m in songs if is_musdb_test_song(m)]
    songs = [m for m in songs if not is_musdb_test_song(m)]
    kept = [{"file": f"rendered/{package.name}/{folder.name}",
             "seconds": round(float(_seconds(folder / "other.flac")), 1)}
            for folder in render_songs(songs, out / "rendered" / package.name, soundfont)]
    return kept, skipped


def _render_mma(package: Package, root: Path, midi_dir: Path, out: Path,
                soundfont: Path) -> tuple[list[dict], list[dict]]:
    """(kept, nothing skipped) of the mma package: :data:`MMA_SONGS` songs written by its MMA from
    charts on its standard grooves, rendered into ``out/rendered/<package>/<song>/`` (a resumed
    build writes and renders only the songs not there yet)."""
    from .accompaniment import Mma, main_grooves, make_charts
    from .midistems import render_songs

    home, dest = root / "usr" / "share" / "mma", out / "rendered" / package.name
    charts = make_charts(main_grooves(home / "lib" / "stdlib"), MMA_SONGS, bars=MMA_BARS)
    todo = [c for c in charts if not (dest / c.name).is_dir()]
    if todo:
        mma = Mma(root / "usr" / "bin" / "mma", home)
        mma.index_grooves()
        for chart in todo:
            mma.write_midi(chart, midi_dir)
    songs = [midi_dir / f"{c.name}.mid" for c in charts]  # render_songs skips those already rendered
    kept = [{"file": f"rendered/{package.name}/{folder.name}",
             "seconds": round(float(_seconds(folder / "other.flac")), 1)}
            for folder in render_songs(songs, dest, soundfont)]
    return kept, []


def _stage_fof(package: Package, root: Path, paths: Sequence[str], staged: Path) -> tuple[list[dict], list[dict]]:
    """(kept, skipped) of a Frets on Fire package: each song's guitar into ``staged/other/`` and
    song + guitar into ``staged/mixtures/``."""
    kept: list[dict] = []
    skipped: list[dict] = []
    for song in sorted({Path(p).parent for p in paths if Path(p).name == "guitar.ogg"}):
        folder = root / song
        why, seconds = audio_check(folder / "guitar.ogg")
        why = why or audio_check(folder / "song.ogg")[0]
        if why:
            skipped.append({"file": song.name, "why": why})
            continue
        name = song.name.replace(" ", "_")
        (staged / "other" / package.name).mkdir(parents=True, exist_ok=True)
        (staged / "mixtures" / package.name).mkdir(parents=True, exist_ok=True)
        shutil.copy2(folder / "guitar.ogg", staged / "other" / package.name / f"{name}.ogg")
        gain = _sum_to_flac(folder / "song.ogg", folder / "guitar.ogg",
                            staged / "mixtures" / package.name / f"{name}.flac")
        kept.append({"file": name, "other": f"other/{package.name}/{name}.ogg",
                     "mixture": f"mixtures/{package.name}/{name}.flac", "seconds": round(seconds, 1),
                     "mixture_gain": round(gain, 4)})
    return kept, skipped


def _stage_loops(package: Package, root: Path, paths: Sequence[str], staged: Path) -> tuple[list[dict], list[dict]]:
    """(kept, skipped) of a drum-loop package: each loop repeated to at least :data:`MIN_SECONDS`
    into ``staged/drums/<package>/<loop>.flac`` (24-bit)."""
    import soundfile as sf

    kept: list[dict] = []
    skipped: list[dict] = []
    for member in paths:
        src = root / member
        try:
            x, rate = sf.read(sf_name(src), dtype="float32", always_2d=True)
        except RuntimeError:
            skipped.append({"file": member, "why": "not readable audio"})
            continue
        if not len(x) or is_musdb_test_song(src):
            skipped.append({"file": member, "why": "empty" if not len(x) else "a MUSDB18 test song's name"})
            continue
        tiled = np.tile(x, (int(np.ceil(MIN_SECONDS * rate / len(x))), 1))
        dst = staged / "drums" / package.name / f"{src.stem}.flac"
        dst.parent.mkdir(parents=True, exist_ok=True)
        sf.write(sf_name(dst), tiled, rate, subtype="PCM_24")
        kept.append({"file": f"drums/{package.name}/{dst.name}", "seconds": round(len(tiled) / rate, 1),
                     "loop_seconds": round(len(x) / rate, 2)})
    return kept, skipped


def _stage_drumkits(package: Package, root: Path, staged: Path) -> tuple[list[dict], list[dict]]:
    """(kept, skipped) of a drum-kit package: each Hydrogen kit able to play a drum performance
    moved into ``staged/drumkits/<package>/<kit>/``; hand-percussion and effect kits skipped."""
    from .drumkit import find_kits

    playable = set(find_kits(root))
    kept: list[dict] = []
    skipped: list[dict] = []
    for kit in sorted(xml.parent for xml in root.rglob("drumkit.xml")):
        if kit not in playable:
            skipped.append({"file": kit.name, "why": "no kick, snare or hi-hat: cannot play a drum performance"})
            continue
        dst = staged / "drumkits" / package.name / kit.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(kit), dst)
        kept.append({"file": f"drumkits/{package.name}/{kit.name}", "samples": sum(1 for f in dst.rglob("*") if f.is_file())})
    return kept, skipped


def _music_files(package: Package, root: Path, paths: Sequence[str], unzipped: Path) -> list[tuple[str, Path, str]]:
    """(member, unpacked path, flat file name) of each music file of a mixtures package; with
    ``package.inner``, the files inside the archives the globs took (unpacked below ``unzipped``)."""
    if len(paths) > 1:
        common = os.path.commonpath([p.lstrip("./") for p in paths])
    else:
        common = Path(paths[0].lstrip("./")).parent.as_posix()
    files = [(m, root / m, _flat_name(m.lstrip("./"), common)) for m in paths]
    if package.inner:  # the globs took archives: the music is inside
        files = [(f"{m}!{name}", path, name.replace("/", "__")) for m, archive, _ in files
                 for name, path in unzip_music(archive, package, unzipped / Path(m).name)]
    return files


def _stage_mixtures(package: Package, root: Path, paths: Sequence[str], staged: Path,
                    unzipped: Path) -> tuple[list[dict], list[dict]]:
    """(kept, skipped) of a mixtures package: each music file that passes :func:`audio_check`
    copied into ``staged/mixtures/<package>/``."""
    kept: list[dict] = []
    skipped: list[dict] = []
    for member, src, flat in _music_files(package, root, paths, unzipped):
        if src.suffix.lower() not in AUDIO_EXTENSIONS:
            skipped.append({"file": member, "why": "not an audio format libsndfile reads"})
            continue
        why, seconds = audio_check(src)
        if why:
            skipped.append({"file": member, "why": why})
            continue
        dst = staged / "mixtures" / package.name / flat
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, dst)
        kept.append({"file": f"mixtures/{package.name}/{dst.name}", "seconds": round(seconds, 1)})
    return kept, skipped


def _move_staged(package: Package, staged: Path, out: Path) -> None:
    """Move a package's staged folders (mixtures, other, drums, drumkits) and licence into ``out``,
    replacing what an interrupted run left there."""
    for sub in ("mixtures", "other", "drums", "drumkits"):
        src = staged / sub / package.name
        if src.is_dir():
            dst = out / sub / package.name
            if dst.exists():
                shutil.rmtree(dst)  # what an interrupted run left (no sources record)
            dst.parent.mkdir(parents=True, exist_ok=True)
            os.replace(src, dst)
    (out / "licences").mkdir(exist_ok=True)
    os.replace(staged / "licences" / f"{package.name}.copyright", out / "licences" / f"{package.name}.copyright")


def _write_json(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` through a ``.partial`` file: the file is whole or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(record, indent=1))
    os.replace(tmp, path)


def build(out: Path, packages: Sequence[Package] = PACKAGES, debs: Path | None = None, keep_debs: bool = False,
          progress: Callable[[Package, dict], None] | None = None, soundfont: Path = DEFAULT_SOUNDFONT) -> list[dict]:
    """Build every package into ``out`` (resumable: done packages are skipped); the .deb files go
    to ``debs`` (default ``out/debs``) and are removed once a package is done unless ``keep_debs``."""
    debs = debs or out / "debs"
    records = []
    for package in packages:
        record = build_package(package, out, debs, soundfont)
        if not keep_debs:
            for deb in debs.glob(f"{package.name}_*.deb"):
                deb.unlink()
        records.append(record)
        if progress:
            progress(package, record)
    return records

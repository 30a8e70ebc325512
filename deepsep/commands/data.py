"""`deepsep data`: build voice training / validation data in the original project's layout."""

from __future__ import annotations

import click

from ..drums import DEFAULT_SOUNDFONT, GM_KITS
from ..voicedata import build_mixtures
from .common import data_root_option, default_under_root


def _snrs(ctx, param, value: str) -> list[int]:
    try:
        out = [int(v) for v in value.replace(",", " ").split()]
    except ValueError:
        raise click.BadParameter("give integer SNRs in dB, e.g. '-5,0,5,10'") from None
    if not out:
        raise click.BadParameter("give at least one SNR")
    return out


@click.group("data")
def data() -> None:
    """Prepare datasets: voice mixtures, test sets, drum renders, listening excerpts."""


@data.command("mix")
@click.option("--speech", "speech_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of clean speech files.")
@click.option("--noise", "noise_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="Folder of noise files.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="Output folder: 0000/, 0001/, ... each with mix_snr_XX.wav, voice.wav, noise.wav.")
@click.option("--count", type=int, default=100, show_default=True, help="Number of mixtures.")
@click.option("--seconds", type=float, default=4.0, show_default=True, help="Length of each mixture.")
@click.option("--snr", "snrs", default="-5,0,5,10", show_default=True, callback=_snrs,
              help="Integer SNRs in dB, used in turn (or LOW,HIGH with --snr-range).")
@click.option("--snr-range", is_flag=True, help="Draw integer SNRs uniformly from --snr LOW,HIGH.")
@click.option("--sample-rate", type=int, default=8000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--subtype", type=click.Choice(["FLOAT", "PCM_16", "PCM_24"]), default="FLOAT", show_default=True,
              help="WAV sample format (FLOAT keeps mix = voice + noise exact).")
def mix(speech_dir, noise_dir, out_dir, count, seconds, snrs, snr_range, sample_rate, seed, subtype) -> None:
    """Mix clean speech with noise at chosen SNRs, reproducibly (same seed, same files)."""
    if count < 1:
        raise click.BadParameter("must be at least 1", param_hint="--count")
    if seconds <= 0:
        raise click.BadParameter("must be positive", param_hint="--seconds")
    try:
        items = build_mixtures(speech_dir, noise_dir, out_dir, count, seconds, snrs, sample_rate, seed,
                               snr_range=snr_range, subtype=subtype)
    except ValueError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"wrote {len(items)} mixtures to {out_dir}")


def _kits(ctx, param, value: str) -> tuple[int, ...]:
    try:
        kits = tuple(int(v) for v in value.replace(",", " ").split())
    except ValueError:
        raise click.BadParameter("give GM drum-kit program numbers, e.g. '0,8,25'") from None
    if not kits or not all(0 <= k < 128 for k in kits):
        raise click.BadParameter("give program numbers from 0 to 127")
    return kits


@data.command("drums")
@click.option("--midi", "midi_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Folder of drum performances as MIDI, searched recursively [default: DATA_ROOT/music/groove].")
@data_root_option
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where the drum stems go [default: ~/.cache/deepsep/drums/<soundfont name>, "
                   "or .../drums/hydrogen with --hydrogen].")
@click.option("--soundfont", default=str(DEFAULT_SOUNDFONT), show_default=True,
              help="A General MIDI soundfont (Debian fluid-soundfont-gm).")
@click.option("--kits", default=",".join(map(str, GM_KITS)), show_default=True, callback=_kits,
              help="GM drum-kit programs to draw from, one per file.")
@click.option("--hydrogen", "hydrogen_dir", default=None, type=click.Path(exists=True, file_okay=False),
              help="Play recorded drum kits in Hydrogen's format found under this folder instead of a soundfont, one "
                   "kit per file (e.g. ~/.cache/deepsep/debian/drumkits after `deepsep data debian --package "
                   "hydrogen-drumkits`).")
@click.option("--sample-rate", type=int, default=44100, show_default=True)
@click.option("--limit", type=click.IntRange(1), default=None, help="Only the first N files.")
@click.pass_context
def drums(ctx, midi_dir, data_root, out_dir, soundfont, kits, hydrogen_dir, sample_rate, limit) -> None:
    """Render drum stems from MIDI performances (for music training: train music --drums OUT)."""
    from pathlib import Path

    from click.core import ParameterSource

    from ..console import reported
    from ..drumkit import find_kits
    from ..drums import hydrogen_renderer, render_folder, soundfont_renderer
    from ..errors import UsageError
    from ..paths import cache_root

    with reported():  # usage mistakes: exit 2 before any work
        midi_dir = default_under_root({"midi": midi_dir}, {"midi": "music/groove"}, data_root)["midi"]
        if hydrogen_dir:
            given = [f"--{n}" for n in ("soundfont", "kits") if ctx.get_parameter_source(n) != ParameterSource.DEFAULT]
            if given:
                raise UsageError(f"--hydrogen plays recorded kits: {' and '.join(given)} (for the soundfont) cannot go with it")
            kit_dirs = find_kits(hydrogen_dir)
            if not kit_dirs:
                raise UsageError(f"{hydrogen_dir}: no Hydrogen drum kit (drumkit.xml with a kick, a snare and a hi-hat) in it")
            render = hydrogen_renderer(kit_dirs, sample_rate)
        else:
            render = soundfont_renderer(soundfont, kits, sample_rate)
    name = "hydrogen" if hydrogen_dir else Path(soundfont).stem
    out = Path(out_dir) if out_dir else cache_root() / "drums" / name

    def progress(done: int, total: int) -> None:
        if done % 50 == 0 or done == total:
            click.echo(f"rendered {done}/{total}", err=True)

    with reported():
        files = render_folder(midi_dir, out, render, sample_rate, limit, progress)
    click.echo(f"{len(files)} drum stems in {out}")


@data.command("debian")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False),
              help="Where the music goes [default: ~/.cache/deepsep/debian].")
@click.option("--package", "names", multiple=True, help="Only this package (repeatable) [default: all of --list].")
@click.option("--list", "list_only", is_flag=True, help="List the packages, what each gives and its licence; build nothing.")
@click.option("--keep-debs", is_flag=True, help="Keep the downloaded .deb files (in OUT/debs).")
@click.option("--soundfont", default=str(DEFAULT_SOUNDFONT), show_default=True,
              help="The General MIDI soundfont that renders the MIDI songs (Debian fluid-soundfont-gm).")
def debian(out_dir, names, list_only, keep_debs, soundfont) -> None:
    """Build music data from Debian's free packages (apt-get download + dpkg-deb; no root)."""
    from pathlib import Path

    from ..console import reported
    from ..debian import PACKAGES, build, find_package
    from ..paths import cache_root

    with reported():
        packages = [find_package(n) for n in names] if names else list(PACKAGES)
    if list_only:
        for p in packages:
            click.echo(f"{p.name:24} {p.kind:9} {p.licence}")
        return
    out = Path(out_dir) if out_dir else cache_root() / "debian"

    def progress(package, record) -> None:
        minutes = sum(k.get("seconds", 0) for k in record["kept"]) / 60
        what = "kits" if package.kind == "drumkits" else f"files ({minutes:.0f} min)"
        click.echo(f"{package.name}: kept {len(record['kept'])} {what}, skipped {len(record['skipped'])}", err=True)

    with reported():
        records = build(out, packages, keep_debs=keep_debs, progress=progress, soundfont=Path(soundfont))
    kits = sum(len(r["kept"]) for r in records if r["kind"] == "drumkits")
    kept = sum(len(r["kept"]) for r in records) - kits
    hours = sum(k.get("seconds", 0) for r in records for k in r["kept"]) / 3600
    click.echo(f"{kept} files ({hours:.1f} h){f' and {kits} drum kits' if kits else ''} from {len(records)} packages in {out} "
               "(mixtures/, other/, drums/, rendered/, drumkits/, licences/, sources/)")


def _gigabytes(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


@data.command("cache")
@click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False),
              help="The decoded-track cache that --prune and --max-gb tidy [default: ~/.cache/deepsep/musdb].")
@click.option("--prune", is_flag=True,
              help="Remove the decoded tracks that no run will read again: earlier decodes of a track whose files "
                   "changed since, and decodes left unfinished by a killed run.")
@click.option("--max-gb", type=click.FloatRange(min=0), default=None,
              help="Prune, then remove the least recently used decoded tracks until the cache takes at most this "
                   "many GB (a run decodes what it misses again).")
@click.option("--dry-run", is_flag=True, help="Only say what --prune / --max-gb would remove.")
def cache(cache_dir, prune, max_gb, dry_run) -> None:
    """What deepsep keeps under its cache folder ($DEEPSEP_CACHE or ~/.cache/deepsep), and tidy the decoded tracks."""
    from pathlib import Path

    from ..datacache import least_recently_used, stale_decodes, usage
    from ..musdb import default_cache_dir
    from ..paths import cache_root

    if dry_run and not (prune or max_gb is not None):
        raise click.UsageError("--dry-run goes with --prune or --max-gb")
    root = cache_root()
    rows = usage(root)
    click.echo(f"{root}: {_gigabytes(sum(r.bytes for r in rows))}" if rows else f"{root}: empty")
    for r in rows:
        click.echo(f"  {r.name:10} {r.files:6} files  {_gigabytes(r.bytes):>9}")
    decoded = Path(cache_dir) if cache_dir else default_cache_dir()
    stale = stale_decodes(decoded)
    if not (prune or max_gb is not None):
        if stale:
            size = sum(f.stat().st_size for f in stale)
            click.echo(f"{decoded}: {len(stale)} stale decoded tracks ({_gigabytes(size)}); --prune removes them")
        return
    gone = stale + (least_recently_used(decoded, int(max_gb * 1e9), skip=set(stale)) if max_gb is not None else [])
    size = sum(f.stat().st_size for f in gone)
    if not dry_run:
        for f in gone:
            f.unlink()
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{decoded}: {verb} {len(gone)} decoded tracks ({_gigabytes(size)})")


@data.command("listen")
@click.argument("songs", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--songs-dir", default=None,
              help="Where to pick songs when none are given (full mixes; --count of them, spread over the folder) "
                   "[default: DATA_ROOT/music/songs].")
@data_root_option
@click.option("--count", type=click.IntRange(1), default=4, show_default=True)
@click.option("-m", "--model", "models", multiple=True, metavar="NAME_OR_FILE",
              help="A model name or .safetensors file (repeatable) [default: music-4stem].")
@click.option("--checkpoint", "checkpoints", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A training checkpoint .pt (repeatable), labelled by its run folder.")
@click.option("--trust-local", is_flag=True, help="Load model files that no sha256 vouches for (as separate).")
@click.option("--start", type=click.FloatRange(0), default=60.0, show_default=True, help="Excerpt start (s).")
@click.option("--seconds", type=click.FloatRange(1), default=20.0, show_default=True, help="Excerpt length (s).")
@click.option("-o", "--out", "out_dir", default="listen", show_default=True, type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace model folders written before.")
@click.option("--threads", type=int, default=None, help="CPU threads for PyTorch [default: 1].")
def listen(songs, songs_dir, data_root, count, models, checkpoints, trust_local, start, seconds, out_dir, overwrite,
           threads) -> None:
    """Write song excerpts with each model's stems beside them, to hear what changed."""
    from pathlib import Path

    from ..audio import AUDIO_EXTENSIONS
    from ..console import reported
    from ..errors import DeepsepError, UsageError
    from ..listen import listening_set, spread, targets
    from ..options import set_threads
    from .evaluate import load_eval_model

    def label(path: str) -> str:
        p = Path(path)
        return f"{p.parent.name}-{p.stem}" if p.suffix == ".pt" else (p.stem if p.suffix else path)

    names = list(models) or ["music-4stem"]
    with reported():
        labels = [label(m) for m in names] + [label(c) for c in checkpoints]
        if len(set(labels)) < len(labels):
            raise UsageError(f"two models would share a folder name: {', '.join(labels)}")
        if songs:
            picked = [Path(s) for s in songs]
        else:
            folder = Path(default_under_root({"songs": songs_dir}, {"songs": "music/songs"}, data_root)["songs"])
            if not folder.is_dir():
                raise DeepsepError(f"songs folder not found: {folder} (give song files or --songs-dir)")
            picked = spread(sorted(p for p in folder.iterdir() if p.suffix.lower() in AUDIO_EXTENSIONS), count)
            if not picked:
                raise DeepsepError(f"no audio files in {folder}")
        taken = [p for p in targets(picked, labels, Path(out_dir)) if p.exists()]
        if taken and not overwrite:
            raise UsageError(f"{taken[0]} exists: give --overwrite to replace it")
        set_threads(threads, "cpu")
        loaded = {}
        for name, lab in zip(names, labels):
            loaded[lab] = load_eval_model(name, None, "music", "cpu", trust_local=trust_local)[0]
        for ck, lab in zip(checkpoints, labels[len(names):]):
            loaded[lab] = load_eval_model(None, ck, "music", "cpu")[0]
        written = listening_set(picked, loaded, Path(out_dir), start, seconds, overwrite)
    click.echo(f"wrote {len(written)} model folders for {len(picked)} songs in {out_dir}")


from .prepare import prepare  # noqa: E402  (a subcommand of its own module)

data.add_command(prepare)

if __name__ == "__main__":  # python -m deepsep.commands.data ...
    data()

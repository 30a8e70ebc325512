"""Pack what a training stage needs on a borrowed GPU machine into ``.gpu/``.

The machine gets the repository's working tree plus carried folders, 64 MiB in all, and has no
package index. So this copies, within a byte budget, with wheels of the packages the machine's
image lacks:

- ``--task voice`` (16 kHz voice; ``scripts/gpu_stage.sh`` runs it): the wide-band training speech
  and noise, every file kept (all speakers, all noise kinds) but cut to at most the same duration
  (Ogg Opus stream copy with ffmpeg, no re-encoding), a few validation files and, with
  ``--narrow-mb``, the 8 kHz corpora (``speech/train``, ``noise/train``) cut the same way for the
  band-limited examples (``--narrow-speech``/``--narrow-noise``; ``NARROW=1 scripts/gpu_stage.sh``);
- ``--task music`` (``scripts/gpu_music.sh`` runs it): the MUSDB18 excerpts (``music/musdb7/train``,
  31 MB, whole: the validation split is drawn from their names as here), the pjs a cappella
  vocals (12 MB) and, with ``--eif-mb``, whole eif songs up to that size but ``Sodium``, the
  held-out song (``music/eif-train/``).

The working tree is 68 MB, 59 of them the three voice U-Nets' weights, so no call has room for
all of it: the script ends by summing what would travel and, over 64 MiB, says which weights to
leave behind for the call (``git rm -q --cached`` them and list them in ``.git/info/exclude``, then
``git reset -q`` and remove those lines): a voice stage needs only ``voice16-unet`` and
``voice16-convtasnet`` (the stages' starts), a music stage only ``music-4stem``.

    python scripts/gpu_pack.py --speech-mb 24 --noise-mb 10
    python scripts/gpu_pack.py --speech-mb 18 --noise-mb 7 --narrow-mb 5  # the same 35 MB + 5
    python scripts/gpu_pack.py --task music --eif-mb 0
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
from pathlib import Path

import soundfile as sf

WIDE = Path("..") / "shared" / "data" / "wideband"
NARROW = Path("..") / "shared" / "data"  # the 8 kHz corpora: speech/, noise/
MUSIC = Path("..") / "shared" / "data" / "music"
HELD_OUT = "Sodium"  # the eif song no music run trains on
#: the packages training imports that the GPU machine's image lacks (soundfile needs cffi)
WHEELS = ["soundfile", "soxr", "pyroomacoustics", "auraloss", "cffi", "pycparser"]
#: what a call takes to the GPU machine: tracked and untracked-not-ignored files, and carried paths
LIMIT = 64 * 2**20
#: the bundled weights a task's stage starts from; the others may stay behind for the call
NEEDED = {"voice": {"voice16-unet.safetensors", "voice16-convtasnet.safetensors"}, "music": {"music-4stem.safetensors"}}


def travelling(out: Path) -> tuple[int, int]:
    """(bytes of the working tree that travels, outside ``out``; bytes of ``out``)."""
    listed = subprocess.run(["git", "ls-files", "-z", "-co", "--exclude-standard"], capture_output=True,
                            check=True).stdout.decode().split("\0")
    tree = sum(p.stat().st_size for p in map(Path, filter(None, listed))
               if p.is_file() and not p.resolve().is_relative_to(out.resolve()))
    return tree, sum(f.stat().st_size for f in out.rglob("*") if f.is_file())


def check_size(out: Path, task: str) -> None:
    """Exit with what to leave behind when the tree and the pack are over the call's limit."""
    tree, pack = travelling(out)
    mib = 2**20
    print(f"a call takes {(tree + pack) / mib:.1f} MiB (tree {tree / mib:.1f}, {out} {pack / mib:.1f}) "
          f"of {LIMIT / mib:.0f}", file=sys.stderr)
    if tree + pack <= LIMIT:
        return
    spare = sorted(str(p) for p in Path("deepsep/pretrained").glob("*.safetensors") if p.name not in NEEDED[task])
    names = " ".join(spare)
    sys.exit(f"over the limit: leave behind the weights a {task} stage does not need, for the call only: "
             f"git rm -q --cached {names} && printf '%s\\n' {names} >> .git/info/exclude "
             "(afterwards: git reset -q, and remove those lines), or pack less")


def trimmed_copy(src: Path, dst: Path, budget: float) -> float:
    """Copy every audio file of ``src`` into ``dst``, each cut to at most T seconds, with T the
    largest that keeps the total under ``budget`` bytes (bytes taken as proportional to duration).
    Returns T."""
    files = sorted(src.glob("*.opus"))
    durs = {f: sf.info(str(f)).duration for f in files}
    size = {f: f.stat().st_size for f in files}

    def total(cap: float) -> float:
        return sum(size[f] * min(1.0, cap / durs[f]) for f in files)

    lo, hi = 0.5, max(durs.values())
    if total(hi) <= budget:
        lo = hi
    for _ in range(40):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if total(mid) <= budget else (lo, mid)
    dst.mkdir(parents=True, exist_ok=True)
    for f in files:
        if durs[f] <= lo:
            shutil.copy(f, dst / f.name)
        else:
            subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(f), "-t", f"{lo:.2f}", "-c", "copy",
                            str(dst / f.name)], check=True)
    return lo


def pack_voice(out: Path, speech_bytes: float, noise_bytes: float, valid_files: int,
               narrow_bytes: float = 0.0) -> None:
    """Wide-band speech and noise cut to fit, ``valid_files`` validation files of each, and the 8 kHz
    speech and noise training files cut to ``narrow_bytes`` each (``narrow_speech/``, ``narrow_noise/``)."""
    for kind in ("speech", "noise") if narrow_bytes > 0 else ():
        cap = trimmed_copy(NARROW / kind / "train", out / f"narrow_{kind}", narrow_bytes)
        print(f"narrow {kind}: files cut to at most {cap:.1f} s", file=sys.stderr)
    for kind, budget in (("speech", speech_bytes), ("noise", noise_bytes)):
        cap = trimmed_copy(WIDE / kind / "train", out / kind, budget)
        print(f"{kind}: files cut to at most {cap:.1f} s", file=sys.stderr)
        valid = sorted((WIDE / kind / "valid").glob("*.opus"))
        (out / f"valid_{kind}").mkdir()
        for f in random.Random(0).sample(valid, min(valid_files, len(valid))):
            shutil.copy(f, out / f"valid_{kind}" / f.name)


def pack_music(out: Path, eif_bytes: float) -> None:
    """The MUSDB18 excerpts and pjs vocals whole, and eif songs (not the held-out one) up to ``eif_bytes``."""
    shutil.copytree(MUSIC / "musdb7" / "train", out / "musdb7")
    shutil.copytree(MUSIC / "pjs", out / "pjs")
    used = 0.0
    for song in sorted(d for d in (MUSIC / "eif").iterdir() if d.is_dir() and d.name != HELD_OUT):
        size = sum(f.stat().st_size for f in song.iterdir())
        if used + size <= eif_bytes:
            shutil.copytree(song, out / "eif-train" / song.name)
            used += size
    print(f"music: eif songs {sorted(p.name for p in (out / 'eif-train').glob('*'))}", file=sys.stderr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".gpu")
    ap.add_argument("--task", choices=("voice", "music"), default="voice")
    ap.add_argument("--eif-mb", type=float, default=0.0, help="music: whole eif songs up to this size")
    ap.add_argument("--speech-mb", type=float, default=24.0)
    ap.add_argument("--noise-mb", type=float, default=10.0)
    ap.add_argument("--narrow-mb", type=float, default=0.0,
                    help="voice: the 8 kHz speech and noise training files, this many MB of each (0: none)")
    ap.add_argument("--valid-files", type=int, default=30, help="validation speech and noise files each")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    if args.task == "music":
        pack_music(out / "music", args.eif_mb * 1e6)
    else:
        pack_voice(out, args.speech_mb * 1e6, args.noise_mb * 1e6, args.valid_files, args.narrow_mb * 1e6)
    plat = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                        "manylinux2014_x86_64") for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python_version, "--implementation", "cp", *plat,
                    "-d", str(out / "whl"), *WHEELS], check=True)
    check_size(out, args.task)


if __name__ == "__main__":
    main()

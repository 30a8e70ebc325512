"""Pack what a 16 kHz voice training stage needs on a borrowed GPU machine into ``.gpu/``.

The machine gets the repository's working tree plus carried folders, 64 MiB in all, and has no
package index. So this copies, within a byte budget: the wide-band training speech and noise,
every file kept (all speakers, all noise kinds) but cut to at most the same duration (Ogg Opus
stream copy with ffmpeg, no re-encoding); a few validation files; and wheels of the packages the
machine's image lacks. ``scripts/gpu_stage.sh`` runs there on it.

    python scripts/gpu_pack.py --speech-mb 27 --noise-mb 11
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
#: the packages training imports that the GPU machine's image lacks (soundfile needs cffi)
WHEELS = ["soundfile", "soxr", "pyroomacoustics", "auraloss", "cffi", "pycparser"]


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=".gpu")
    ap.add_argument("--speech-mb", type=float, default=27.0)
    ap.add_argument("--noise-mb", type=float, default=11.0)
    ap.add_argument("--valid-files", type=int, default=30, help="validation speech and noise files each")
    ap.add_argument("--python-version", default="3.12", help="the GPU machine's Python")
    args = ap.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    for kind, mb in (("speech", args.speech_mb), ("noise", args.noise_mb)):
        cap = trimmed_copy(WIDE / kind / "train", out / kind, mb * 1e6)
        print(f"{kind}: files cut to at most {cap:.1f} s", file=sys.stderr)
        valid = sorted((WIDE / kind / "valid").glob("*.opus"))
        (out / f"valid_{kind}").mkdir()
        for f in random.Random(0).sample(valid, min(args.valid_files, len(valid))):
            shutil.copy(f, out / f"valid_{kind}" / f.name)
    plat = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
                        "manylinux2014_x86_64") for a in ("--platform", p)]
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                    "--python-version", args.python_version, "--implementation", "cp", *plat,
                    "-d", str(out / "whl"), *WHEELS], check=True)
    mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 1e6
    print(f"{out}: {mb:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    main()

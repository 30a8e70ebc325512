"""Memory that music training's decoded tracks take: a MusicDataset loaded as ``deepsep train
music`` loads it (from the decoded-track cache; decoded first where it is empty), then the
minutes of audio, the bytes of the arrays it holds and the process's peak resident memory.

    python benchmarks/music_data_memory.py --extra runs/eif6 --vocals ../shared/data/music/pjs \\
        --drums ~/.cache/deepsep/drums/hydrogen --solo-minutes 30
"""

from __future__ import annotations

import argparse
import resource

from deepsep.musdb import SAMPLE_RATE, MusicDataset
from deepsep.paths import data_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="MUSDB18-style tracks [default: DATA_ROOT/music/musdb7/train]")
    ap.add_argument("--extra", action="append", default=[])
    ap.add_argument("--vocals", action="append", default=[])
    ap.add_argument("--drums", action="append", default=[])
    ap.add_argument("--other", action="append", default=[])
    ap.add_argument("--solo-minutes", type=float, default=60.0)
    args = ap.parse_args()
    root = args.data or str(data_root(check=True) / "music" / "musdb7" / "train")
    solo = [(s, f) for s in ("vocals", "drums", "other") for f in getattr(args, s)]
    ds = MusicDataset(root, extra=args.extra, solo=solo, solo_minutes=args.solo_minutes)
    minutes = sum(t.shape[-1] for t in ds.tracks.values()) / SAMPLE_RATE / 60
    held = sum(t.nbytes for t in ds.tracks.values())
    full = sum(5 * t[0].nbytes for t in ds.tracks.values())  # as (mixture + 4 stems) rows each
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{len(ds.tracks)} tracks, {minutes:.0f} min: arrays {held / 2**20:.0f} MB "
          f"(all five rows each: {full / 2**20:.0f} MB); peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()

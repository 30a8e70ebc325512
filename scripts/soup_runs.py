"""Average the final moving averages of music training runs (a "model soup") into a new run folder,
so that ``deepsep train music -o OUT --evaluate --final [--export NAME]`` measures and exports it.

    python scripts/soup_runs.py runs/s23-m-speed3 runs/s23-m-speed2long -o runs/s23-soup

The runs must share the network and config (stages from the same weights); OUT gets the first run's
split.json, commands.txt and last.pt, whose weights are the averaged ones (and no moving average of
its own, so that --final reads them).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import torch

from deepsep.train.checkpoints import averaged_weights, load_checkpoint


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders with last.pt of a run with --ema")
    ap.add_argument("-o", "--out", type=Path, required=True, help="new run folder (must not exist)")
    args = ap.parse_args()
    if len(args.runs) < 2:
        ap.error("give at least two runs to average")
    cks = [load_checkpoint(r / "last.pt") for r in args.runs]
    if any("ema" not in ck for ck in cks) or any(ck["config"] != cks[0]["config"] for ck in cks):
        ap.error("every run needs --ema and the same network config")
    averages = [averaged_weights(ck) for ck in cks]
    soup = cks[0]
    soup["model"] = {k: sum(a[k] for a in averages) / len(averages) if v.is_floating_point() else v
                     for k, v in averages[0].items()}
    del soup["ema"]
    for key in ("config", "options", "extra"):  # as save_checkpoint stores them
        soup[key] = json.dumps(soup[key])
    args.out.mkdir(parents=True, exist_ok=False)
    for name in ("split.json", "commands.txt"):
        shutil.copy(args.runs[0] / name, args.out / name)
    torch.save(soup, args.out / "last.pt")
    print(f"{args.out / 'last.pt'}: the moving averages of {len(cks)} runs averaged")


if __name__ == "__main__":
    main()

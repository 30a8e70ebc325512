#!/usr/bin/env bash
# Music training on a borrowed GPU machine, on what `scripts/gpu_pack.py --task music` packed in
# .gpu/music. Three runs share the GPU, each for MINUTES of training, batch 16, validated on the same
# 10 MUSDB tracks as here (the split is drawn from the track names), their best checkpoint picked on 6
# other MUSDB tracks held out of the stage's training (--select-tracks 6), so that the 10 pick nothing:
#   A  a further stage of the shipped music-4stem (band-split, hop 512, 3 layer pairs), MUSDB only, lr 5e-4
#   B  the shipped network grown to 5 layer pairs (--init adds two pairs that start as the identity),
#      MUSDB only, lr 1e-3
#   C  a larger band-split (96 features, 3 layer pairs) on MUSDB + pjs vocals (+ eif songs if packed),
#      MUSDB drawn for 70 % of the examples
# All three play their examples at random speeds (--speed 0.2: 0.1 gained 0.11 dB at one CPU budget, then 0.2 0.14 more in
# session 22) and validate and export a moving average of their weights (--ema 0.998: on the CPU, 0.995
# gained 0.05-0.15 dB over the raw weights early in a stage). A and B start from weights that learned
# the 6 selection tracks too, which then favour the start (session 22: they fell while the 10
# validation tracks rose), so for them the rule is fixed beforehand: their final moving average (what
# `deepsep train music --evaluate --final` reads) comes back; C, trained from scratch, returns its
# best.pt. Each without its optimizer state, with the logs; evaluate them here with
# `deepsep eval --dataset music-test --checkpoint runA.pt` and on the held-out eif song.
#   OUT=/some/dir MINUTES=9 bash scripts/gpu_music.sh
# (locally, to try it: SKIP_WHEELS=1 DEVICE=cpu MINUTES=0.2 OUT=/tmp/o bash scripts/gpu_music.sh)
set -euo pipefail
MINUTES=${MINUTES:-9} DEVICE=${DEVICE:-cuda}
export OUT=${OUT:?set OUT to where the results go}
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD DEEPSEP_CACHE=/tmp/deepsep-cache PYTHONUNBUFFERED=1
M=.gpu/music
EXTRA=()
[ -d $M/eif-train ] && EXTRA=(--extra $M/eif-train)
# every track decoded once, in parallel, into the cache that the three runs then read
python3 - <<'EOF'
import os, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import torch
from deepsep.musdb import cached_track, find_tracks, solo_tracks

t = time.time()
m = Path(".gpu/music")
refs = find_tracks(m / "musdb7") + solo_tracks(m / "pjs", "vocals", 3600)
refs += find_tracks(m / "eif-train") if (m / "eif-train").is_dir() else []
with ProcessPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(cached_track, refs, chunksize=4))
print(f"decoded {len(refs)} tracks in {time.time() - t:.0f} s", flush=True)
print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(), os.cpu_count(), "cores")
EOF
COMMON=(--data $M/musdb7 --supervised-only --arch music_bandsplit --device "$DEVICE" --threads 1
        --batch-size 16 --steps 1000000 --max-minutes "$MINUTES" --valid-every 1000 --ckpt-every 1000 --no-progress --overwrite
        --ema 0.998 --select-tracks 6 --speed 0.2)
python3 -m deepsep train music "${COMMON[@]}" --config '{"hop": 512, "layers": 3}' --init music-4stem --lr 5e-4 -o /tmp/runA > /tmp/runA.txt 2>&1 &
python3 -m deepsep train music "${COMMON[@]}" --config '{"hop": 512, "layers": 5}' --init music-4stem --lr 1e-3 -o /tmp/runB > /tmp/runB.txt 2>&1 &
python3 -m deepsep train music "${COMMON[@]}" --config '{"hidden": 96, "layers": 3, "hop": 512}' --vocals $M/pjs \
    ${EXTRA[@]+"${EXTRA[@]}"} --main-share 0.7 -o /tmp/runC > /tmp/runC.txt 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv || true; uptime
wait
python3 - <<'EOF'
import os, torch
from deepsep.train.checkpoints import averaged_weights
for run, which in (("A", "last"), ("B", "last"), ("C", "best")):
    ck = torch.load(f"/tmp/run{run}/{which}.pt", map_location="cpu", weights_only=True)
    ck["optimizer"] = {}
    if which == "last":  # the moving average in place of the raw weights, as best.pt holds it
        ck["model"] = averaged_weights(ck)
    ck.pop("ema", None)
    torch.save(ck, f"{os.environ['OUT']}/run{run}.pt")
EOF
cd /tmp && tar czf "$OUT/logs.tgz" runA.txt runB.txt runC.txt runA/log.jsonl runB/log.jsonl runC/log.jsonl
tail -n 3 runA.txt runB.txt runC.txt
ls -la "$OUT"

#!/usr/bin/env bash
# One 16 kHz voice training stage on a borrowed GPU machine, on what scripts/gpu_pack.py packed in .gpu/.
# Three runs share the GPU, each for MINUTES of training: A continues voice16-unet with the recipe
# (the candidate for 16 kHz files); B does the same with a share FULL_RATE (default 0.5) of its
# examples through a 48 kHz round trip, validated on items resampled to 48 kHz (--p-full-rate,
# --valid-rate: the band edge a 44.1/48 kHz file has; the candidate for voice16-unet-48k, which
# serves files above 16 kHz; session 17, README); C continues voice16-convtasnet (session 13's run C,
# trained from scratch for 8.8 GPU minutes, was still climbing; a CPU stage did not move it), the
# member of the `voice` ensembles that more GPU time lifts most (README). Each run's
# best.pt comes back without its optimizer state (float16 for the U-Nets), in pieces under 16 MB,
# with the logs.
#   OUT=/some/dir MINUTES=5.5 bash scripts/gpu_stage.sh
# (locally, to try it: SKIP_WHEELS=1 DEVICE=cpu MINUTES=0.2 OUT=/tmp/o bash scripts/gpu_stage.sh)
# NARROW=1 (with `gpu_pack.py --narrow-mb N`): A, B and C also take the 8 kHz corpora into their
# band-limited examples (--narrow-speech/--narrow-noise; session 14's CPU measurement, README).
set -euo pipefail
MINUTES=${MINUTES:-5.5} DEVICE=${DEVICE:-cuda}
export OUT=${OUT:?set OUT to where the results go}
[ -n "${SKIP_WHEELS:-}" ] || python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpu/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD DEEPSEP_CACHE=/tmp/deepsep-cache PYTHONUNBUFFERED=1
W=/tmp/wav
python3 - <<'EOF'
import os, time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
import soundfile as sf, torch
from deepsep.voicedata import load_mono
from deepsep.augment import room_impulse_responses

t = time.time()
jobs = [(f, Path("/tmp/wav") / d / (f.stem + ".wav"))
        for d in ("speech", "noise", "valid_speech", "valid_noise", "narrow_speech", "narrow_noise")
        for f in sorted(Path(".gpu", d).glob("*.opus"))]
def decode(job):
    src, dst = job
    dst.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(dst), load_mono(src, 16000), 16000, subtype="FLOAT")
with ProcessPoolExecutor(os.cpu_count()) as pool:
    list(pool.map(decode, jobs, chunksize=8))
print(f"decoded {len(jobs)} files in {time.time() - t:.0f} s", flush=True)
t = time.time()
room_impulse_responses(200, 16000, seed=0)
room_impulse_responses(50, 16000, seed=987654)
print(f"rooms in {time.time() - t:.0f} s", flush=True)
print(torch.__version__, torch.cuda.is_available() and torch.cuda.get_device_name(), os.cpu_count(), "cores")
EOF
# the validation set is built once, before the runs start side by side
python3 -c "from deepsep.train.validation import build_validation_set as b; b('$W/valid_speech', '$W/valid_noise', '/tmp/valid16', sample_rate=16000, p_reverb=0.25)"
COMMON=(--device "$DEVICE" --threads 1 --steps 1000000 --max-minutes "$MINUTES" --no-progress
        --speech $W/speech --noise $W/noise --valid-speech $W/valid_speech --valid-noise $W/valid_noise
        --valid-dir /tmp/valid16)
N=(); [ -z "${NARROW:-}" ] || N=(--narrow-speech $W/narrow_speech --narrow-noise $W/narrow_noise)
UNET=(--init voice16-unet --batch-size 16 --lr 5e-4 --workers 5 --valid-every 500 --ckpt-every 500)
python3 -m deepsep train unet16 "${COMMON[@]}" "${UNET[@]}" "${N[@]}" -o /tmp/runA > /tmp/runA.txt 2>&1 &
python3 -m deepsep train unet16 "${COMMON[@]}" "${UNET[@]}" "${N[@]}" --p-full-rate "${FULL_RATE:-0.5}" --valid-rate 48000 -o /tmp/runB > /tmp/runB.txt 2>&1 &
python3 -m deepsep train convtasnet16 "${COMMON[@]}" "${N[@]}" --init voice16-convtasnet --lr 1e-3 --batch-size 16 --workers 3 --valid-every 1000 --ckpt-every 1000 -o /tmp/runC > /tmp/runC.txt 2>&1 &
sleep 90; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv || true; uptime
wait
python3 - <<'EOF'
import os, torch
for run, half in (("A", True), ("B", True), ("C", False)):
    ck = torch.load(f"/tmp/run{run}/best.pt", map_location="cpu", weights_only=True)
    ck["optimizer"] = {}
    ck.pop("ema", None)
    if half:
        ck["model"] = {k: v.half() if v.is_floating_point() else v for k, v in ck["model"].items()}
    torch.save(ck, f"/tmp/run{run}.pt")
    os.system(f"cp /tmp/run{run}/log.jsonl /tmp/log{run}.jsonl")
EOF
cd /tmp && tar czf "$OUT/logs.tgz" runA.txt runB.txt runC.txt logA.jsonl logB.jsonl logC.jsonl
tar cf run_pts.tar runA.pt runB.pt runC.pt && split -b 15M run_pts.tar "$OUT/pts.tar.part-"
tail -n 3 runA.txt runB.txt runC.txt
ls -la "$OUT"
# Stage 3 of the shipped voice16-unet ran as a second call on the same (still warm) machine, on the
# files the first call left in /tmp, with the Conv-TasNet run resumed beside it:
#   C=(--device cuda --threads 1 --steps 1000000 --no-progress --speech $W/speech --noise $W/noise
#      --valid-speech $W/valid_speech --valid-noise $W/valid_noise --valid-dir /tmp/valid16)
#   deepsep train unet16 "${C[@]}" --max-minutes 3.3 --init /tmp/runA.pt --batch-size 16 --lr 3e-4 \
#       --workers 7 --valid-every 500 --ckpt-every 500 -o /tmp/runA2 &
#   deepsep train convtasnet16 "${C[@]}" --max-minutes 8.8 --batch-size 16 --workers 7 \
#       --valid-every 1000 --ckpt-every 1000 -o /tmp/runC --resume &

#!/usr/bin/env bash
# Fused training (issue 15) on a CUDA machine, in one go, from the repository root:
#
#     bash benchmarks/gpu_fused.sh OUTDIR [ML100K_PARENT_DIR]     (default ../shared/data)
#
# 1. tests/test_fused.py on cuda: fused = sequential within the tests' tolerance, the paired
#    identity, divergence, kill/resume (LOSSBENCH_FUSED_TEST_DEVICE=cuda);
# 2. the default comparison (synthetic, --strategy all --seeds 3: 12 runs in 3 fused groups
#    of 4), sequential vs fused (benchmarks/bench_fused.py): wall time, where it goes, and
#    how far the numbers differ (goal: >= 3x, fused <= 15 s);
# 3. a sweep's b grid: flood at 12 levels, seed 0 (one fused group of 12 runs): how the
#    gain grows with the size of a group;
# 4. ml-100k --strategy all --seeds 3, when the data is there: its dropout (0.5) does not
#    fuse on CUDA by default, so this measures --allow-dropout (fused runs draw other dropout
#    masks than unfused ones: the numbers differ, the speed is the point).
# Each step has its own time limit (about 7 minutes in all on an H200) and the script goes
# on after a failure; everything is logged to OUTDIR/log.txt, the numbers to OUTDIR/*.json.
set -u
OUTDIR=${1:?usage: gpu_fused.sh OUTDIR [ML100K_PARENT_DIR]}
DATA=${2:-../shared/data}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}     # DEVICE=cpu SMOKE="--epochs 2 --seeds 1" tries the script on a CPU
SMOKE=${SMOKE:-}
mkdir -p "$OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
export PYTHONUNBUFFERED=1
exec > >(tee -a "$OUTDIR/log.txt") 2>&1

source "$(dirname "$0")/gpu_lib.sh"   # step, timed

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null
$PY -c "import torch, os; print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', '| cpus', os.cpu_count())"

step "1. tests/test_fused.py on $DEVICE"
LOSSBENCH_FUSED_TEST_DEVICE=$DEVICE timed 120 $PY -m pytest -q -s -p no:cacheprovider \
    tests/test_fused.py

step "2. default comparison, sequential vs fused, on $DEVICE"
timed 200 $PY benchmarks/bench_fused.py --config experiments/synthetic.toml --strategy all \
    --seeds 3 --device $DEVICE $SMOKE --json "$OUTDIR/synthetic.json"

step "3. flood at 12 levels (a sweep's b grid), seed 0, sequential vs fused, on $DEVICE"
timed 150 $PY benchmarks/bench_fused.py --config experiments/synthetic.toml --strategy flood \
    --b-grid 8.6,8.7,8.8,8.9,9.0,9.1,9.2,9.3,9.4,9.5,9.6,9.7 --device $DEVICE $SMOKE \
    --json "$OUTDIR/bgrid.json"

if [ -d "$DATA/ml-100k" ]; then
    step "4. ml-100k --strategy all --seeds 3, sequential vs fused (--allow-dropout), on $DEVICE"
    timed 240 $PY benchmarks/bench_fused.py --config experiments/ml-100k.toml --strategy all \
        --seeds 3 --device $DEVICE --data-dir "$DATA" --allow-dropout $SMOKE \
        --json "$OUTDIR/ml100k.json"
else
    step "4. skipped: no $DATA/ml-100k"
fi
step done

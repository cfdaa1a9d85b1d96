#!/usr/bin/env bash
# The checks we run when a CUDA machine is at hand, in one go, from the repository root:
#
#     bash benchmarks/gpu_check.sh OUTDIR [ML100K_PARENT_DIR]
#
# 1. the default comparison (`run --strategy all --seeds 3`) on cuda, timed, and its report;
# 2. seed 0 again: how far two identical GPU runs differ (README: Determinism);
# 3. `--jobs 2` on cuda (capped at one process per GPU);
# 4. ml-100k, plain without L_aux, seed 0 on cuda, to compare with the CPU's test metrics;
# 5. the runner-vs-bare-loop benchmark on cuda;
# 6. the fault tests (kill/resume, signals, determinism) with CUDA visible.
# Every step has its own time limit and the script goes on after a failure; the log says
# which step failed. Results land in OUTDIR.
set -u
OUTDIR=${1:?usage: gpu_check.sh OUTDIR [ML100K_PARENT_DIR]}
DATA=${2:-}
PY=${PYTHON:-python3}
DEVICE=${DEVICE:-cuda}     # DEVICE=cpu SMOKE="--set epochs=2" tries the script out on a CPU
SMOKE=${SMOKE:-}
BENCH_EPOCHS=20
[ -n "$SMOKE" ] && BENCH_EPOCHS=2
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1

source "$(dirname "$0")/gpu_lib.sh"   # step, timed

step environment
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
$PY -c "import torch, typer, rich, sklearn, matplotlib, numpy; \
print('torch', torch.__version__, '| cuda', torch.cuda.is_available(), \
torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', '| cpus', __import__('os').cpu_count())"

step "1. default comparison on cuda"
timed 200 $PY -m lossbench run --config experiments/synthetic.toml --strategy all --seeds 3 \
    --device $DEVICE $SMOKE --out "$OUTDIR/main"
timed 60 $PY -m lossbench report "$OUTDIR"/main/*/

step "2. seed 0 again: GPU run-to-run differences"
timed 100 $PY -m lossbench run --config experiments/synthetic.toml --strategy all --seeds 1 \
    --device $DEVICE $SMOKE --out "$OUTDIR/again"
$PY - "$OUTDIR" <<'EOF'
import csv, sys
from pathlib import Path
out = Path(sys.argv[1])
def rows(path):
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in r.items() if k != "seconds"} for r in csv.DictReader(f)]
for second in sorted(out.glob("again/*/*/metrics.csv")):
    first = out / "main" / second.parent.parent.name / second.parent.name / "metrics.csv"
    a, b = rows(first), rows(second)
    diff = max((abs(x[k] - y[k]) for x, y in zip(a, b) for k in x), default=float("nan"))
    print(f"{second.parent.name}: {len(a)} vs {len(b)} epochs, identical={a == b}, "
          f"max |diff| {diff:.3g}, final val_loss {a[-1]['val_loss']:.6f} vs {b[-1]['val_loss']:.6f}")
EOF

step "3. --jobs 2 on cuda"
timed 100 $PY -m lossbench run --config experiments/synthetic.toml --strategy plain \
    --strategy flood --seeds 2 --jobs 2 --device $DEVICE --set epochs=20 $SMOKE --out "$OUTDIR/jobs"

if [ -n "$DATA" ]; then
    step "4. ml-100k plain, aux none, seed 0 on cuda"
    timed 150 $PY -m lossbench run --config experiments/ml-100k.toml --aux none \
        --strategy plain --seed 0 --device $DEVICE $SMOKE --data-dir "$DATA" --out "$OUTDIR/ml100k"
    cat "$OUTDIR"/ml100k/*/*/summary.json
fi

step "5. runner vs bare loop on cuda"
timed 120 $PY benchmarks/bench_trainer.py --device $DEVICE --skip-cli --reps 3 --epochs $BENCH_EPOCHS

step "6. fault tests with CUDA visible"
timed 200 $PY -m pytest -x -q -p no:cacheprovider tests/test_faults.py
step done

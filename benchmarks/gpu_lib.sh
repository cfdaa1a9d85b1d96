# Shared by benchmarks/gpu_check.sh and benchmarks/gpu_fused.sh (sourced; needs $PY set).
# step TITLE...: a timestamped heading in the log.
# timed SECONDS_LIMIT command...: run the command under `timeout`, then print its exit code
# and wall time; never stops the script (every step goes on after a failure).

step() { echo; echo "== $(date +%T) $*"; }
timed() {
    local limit=$1 start end rc
    shift
    start=$EPOCHREALTIME
    timeout "$limit" "$@"
    rc=$?
    end=$EPOCHREALTIME
    echo "-- rc $rc, $($PY -c "print(round($end - $start, 1))") s wall: $*"
}

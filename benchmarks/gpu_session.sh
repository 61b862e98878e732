#!/usr/bin/env bash
# Every GPU measurement jaxloss owes, as ONE command for a GPU session:
#
#   bash benchmarks/gpu_session.sh            # on the device machine, from the repo root
#
# Steps (each under its own time limit: 110 + 170 + 130 + 80 + 20 s = 510 s, so the
# whole stays under 9 minutes on an H100 even if every step runs to its limit; a
# failing step does not stop the next):
#   0. install jaxloss (pip install -e . --no-deps; PYTHONPATH as fallback) and
#      check that JAX sees a GPU (abort otherwise: no CPU numbers labelled GPU);
#   1. ce_bandwidth.py at the full [8192, 131072] shape, bf16 and f32 (the headline);
#   2. fused_ce.py --gpu-target (its default on a GPU): lean, grad_in_forward (fast), lean at chunk 8192,
#      fast at token block 1024, jaxloss unfused, optax and jax-cce (pip install -e .[bench]; skipped if
#      absent) at N=8192, D=4096, V=131072 bf16: 7 compiles + ~60 timed steps, inside its 170 s;
#   3. bench.py over the whole registry at the large size (2**24 elements);
#   4. verify_device.py: jaxloss.verify over the registry in 4 dtypes, as a fragment;
#   5. make_results.py, regenerating benchmarks/RESULTS.md with the new fragments.
#
# Writes the fragments into benchmarks/results/ and copies into $OUT (at most 8
# files come back from the device tool): ce_bandwidth_gpu.md, fused_ce_gpu.md,
# bench_gpu.md, verify_gpu.md, RESULTS.md, session.log, json.tar.gz (raw JSON).
# Afterwards, on the development machine: copy the *_gpu.md fragments into
# benchmarks/results/, run `python benchmarks/make_results.py`, commit.
#
# DRY_RUN=1 bash benchmarks/gpu_session.sh  checks the wiring on any machine (a
# CPU too) at tiny shapes, writing only under $OUT (the repo is left alone).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT="${OUT:-$ROOT/gpu_out}"
RES="$ROOT/benchmarks/results"
RESULTS_MD="$ROOT/benchmarks/RESULTS.md"
PY="${PYTHON:-python3}"
DRY_RUN="${DRY_RUN:-0}"
CE_ARGS=(--shape 8192,131072 --repeats 20)
FUSED_ARGS=()
BENCH_ARGS=(--sizes large --large-elems 16777216 --budget-s 90)
VERIFY_ARGS=()
if [ "$DRY_RUN" = 1 ]; then
  RES="$OUT/results"
  RESULTS_MD="$OUT/RESULTS.md"
  mkdir -p "$RES"
  cp "$ROOT"/benchmarks/results/*.md "$RES"/ 2>/dev/null || true
  CE_ARGS=(--shape 16,256 --repeats 2 --warmup 1 --min-sample-s 0.001)
  FUSED_ARGS=(--quick)
  BENCH_ARGS=(--quick --budget-s 20)
  VERIFY_ARGS=(squared_error)
fi
mkdir -p "$OUT" "$RES" "$OUT/json"
LOG="$OUT/session.log"
: >"$LOG"
T0=$SECONDS
STATUS=()
export PYTHONUNBUFFERED=1
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

log() { echo "[gpu_session +$((SECONDS - T0))s] $*" | tee -a "$LOG"; }

step() {  # step NAME LIMIT_S CMD...: runs CMD with a time limit, output to the log
  local name=$1 limit=$2
  shift 2
  log "start $name (limit ${limit}s): $*"
  timeout --kill-after=10 "$limit" "$@" >>"$LOG" 2>&1
  local rc=$?
  log "end $name: rc=$rc$([ $rc -eq 124 ] && echo ' (time limit)')"
  STATUS+=("$name=$rc")
}

# 0. install and check the device
if [ "$DRY_RUN" != 1 ]; then
  "$PY" -m pip install -e . --no-deps --no-build-isolation -q >>"$LOG" 2>&1 \
    || log "pip install -e . failed; using PYTHONPATH=$ROOT"
  "$PY" -c "import jax_cce" >>"$LOG" 2>&1 || timeout 20 "$PY" -m pip install -q --retries 0 --timeout 5 "jax-cce==0.1.0" --no-deps >>"$LOG" 2>&1 \
    || log "jax-cce not installable (no index?): fused_ce.py skips that peer"
fi
"$PY" - >>"$LOG" 2>&1 <<'EOF'
import jax, jaxloss
print("jax", jax.__version__, "devices", jax.devices(), "jaxloss losses", len(jaxloss.REGISTRY))
EOF
PLATFORM=$("$PY" -c 'import jax; print(jax.devices()[0].platform)' 2>>"$LOG")
if [ "$PLATFORM" != "gpu" ] && [ "$DRY_RUN" != 1 ]; then
  log "JAX platform is '$PLATFORM', not gpu: nothing measured (see $LOG)"
  tail -n 40 "$LOG"
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total,clocks.sm,clocks.mem --format=csv >>"$LOG" 2>&1 || true

# 1. integer-label CE bandwidth and accuracy at the full shape
step ce_bandwidth 110 "$PY" benchmarks/ce_bandwidth.py "${CE_ARGS[@]}" \
  --out "$RES/ce_bandwidth_gpu.md" --json "$OUT/json/ce_bandwidth_gpu.json"

# 2. fused linear + CE: all modes and peers at the issue's shape (the script's GPU default)
if [ -f benchmarks/fused_ce.py ]; then
  step fused_ce 170 "$PY" benchmarks/fused_ce.py "${FUSED_ARGS[@]}" --out "$RES/fused_ce_gpu.md" --json "$OUT/json/fused_ce_gpu.json"
fi

# 3. the whole registry at the large size; stops starting new losses after 90 s
step bench 130 "$PY" benchmarks/bench.py "${BENCH_ARGS[@]}" \
  --out "$RES/bench_gpu.md" --json "$OUT/json/bench_gpu.json"

# 4. derivative verification on the GPU (the table goes into RESULTS.md like the timings)
step verify 80 "$PY" benchmarks/verify_device.py "${VERIFY_ARGS[@]}" \
  --out "$RES/verify_gpu.md" --json "$OUT/json/verify_gpu.json"

# 5. regenerate RESULTS.md and collect what comes back
step make_results 20 "$PY" benchmarks/make_results.py --results-dir "$RES" --output "$RESULTS_MD"
for f in ce_bandwidth_gpu.md fused_ce_gpu.md bench_gpu.md verify_gpu.md; do
  [ -f "$RES/$f" ] && cp "$RES/$f" "$OUT/$f"
done
[ "$RESULTS_MD" = "$OUT/RESULTS.md" ] || cp "$RESULTS_MD" "$OUT/RESULTS.md" 2>/dev/null || true
tar -czf "$OUT/json.tar.gz" -C "$OUT" json && rm -rf "$OUT/json"
log "done in $((SECONDS - T0)) s: ${STATUS[*]}"

# the tail of stdout is what the device tool shows: the headline tables last
for f in bench_gpu.md fused_ce_gpu.md ce_bandwidth_gpu.md; do
  [ -f "$OUT/$f" ] && { echo; cat "$OUT/$f"; }
done
echo
echo "status: ${STATUS[*]}"
for s in "${STATUS[@]}"; do
  case $s in *=0) ;; *) exit 1 ;; esac
done
exit 0

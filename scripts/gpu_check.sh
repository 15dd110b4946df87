#!/usr/bin/env bash
# The GPU numbers of docs/benchmarks.md, in under 8 minutes, on a machine with a CUDA GPU:
#
#   bash scripts/gpu_check.sh          # from a copy of this repository whose .venv is set up (`make setup`)
#   bash scripts/gpu_check.sh --cpu    # the same steps at 128 px on the CPU: checks the script, not the GPU
#
# Prints, for the paper layout (experiment=paper_r50, ResNet-50) and the released layout
# (experiment=release_swint, Swin-T), on synthetic 640 x 640 images: training steps per second and peak GPU
# memory at 640 x 640 crops, batch 4, bf16-mixed, eager and compiled (model.compile=true; the compiling
# step is a warm-up step); how often the training forward and the loss wait for the GPU; predict's images
# per second at 640 (its defaults: bf16, channels-last, decoding 4 people, band-only refinement for the
# released layout); and a 2-process DDP run of a few steps when two GPUs are present. Needs no network and
# no data set. Each step has a time limit within the total budget; a step that fails or runs out of time is
# reported, the others still run, and the script exits non-zero naming the steps that failed.
# PYTHON=/path/to/python picks the interpreter (default: .venv/bin/python, else python3); OUT=dir keeps the
# JSON results and logs (default: a temporary folder).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=$(command -v python3)
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"  # this copy's code, whatever the venv installed
export WANDB_MODE=offline HYDRA_FULL_ERROR=1
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"
# seconds: under 8 minutes with the start-up on a GPU; the CPU's smaller steps are slower than a GPU's
if [ "$MODE" = gpu ]; then BUDGET=${BUDGET:-470}; else BUDGET=${BUDGET:-1500}; fi
DEADLINE=$((SECONDS + BUDGET))
FAILED=()

step() {  # step NAME CAP_SECONDS COMMAND...: run with min(CAP, time left), log to $OUT/NAME.log
  local name=$1 cap=$2 left
  shift 2
  left=$((DEADLINE - SECONDS))
  if [ "$left" -lt 20 ]; then
    echo "== $name: skipped, the ${BUDGET} s budget is spent"
    FAILED+=("$name (no time left)")
    return
  fi
  [ "$cap" -gt "$left" ] && cap=$left
  echo "== $name (at most ${cap} s)"
  local start=$SECONDS
  timeout "$cap" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  if [ $rc -eq 0 ]; then
    grep -E "steps/s|host syncs|\| (bf16|fp32)|images / s|\|---|=== E2E-HIM run finished|train_minutes" "$OUT/$name.log"
    echo "   ($((SECONDS - start)) s)"
  else
    [ $rc -eq 124 ] && why="ran out of its ${cap} s" || why="exit $rc"
    echo "   FAILED ($why); the end of $OUT/$name.log:"
    tail -n 15 "$OUT/$name.log" | sed 's/^/   | /'
    FAILED+=("$name ($why)")
  fi
}

if [ "$MODE" = gpu ]; then
  "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" || {
    echo "gpu_check: no CUDA GPU visible to $PY (torch.cuda.is_available() is False); run with --cpu to" \
         "check the script on the CPU" >&2
    exit 2
  }
  DEVICE=cuda SIZE=640 STEPS=20 ROUNDS=20
  PAPER=(experiment=paper_r50 data=synthetic data.batch_size=4)
  RELEASE=(experiment=release_swint data=synthetic data.batch_size=4)
  COMPILE=()
else
  DEVICE=cpu SIZE=128 STEPS=1 ROUNDS=1
  PAPER=(experiment=paper_r50 debug=smoke data.batch_size=2)
  RELEASE=(experiment=release_swint debug=smoke_release data.batch_size=2)
  COMPILE=(+model.compile_options.backend=eager)  # inductor takes minutes per network on a CPU
fi
"$PY" - <<PYEOF || { echo "gpu_check: cannot import torch and e2e_him with $PY" >&2; exit 2; }
import torch, e2e_him
gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
print(f"gpu_check ($MODE): torch {torch.__version__}, e2e_him from {e2e_him.__file__}, GPUs: {gpus or 'none'}")
PYEOF
GPUS=$("$PY" -c "import torch; print(torch.cuda.device_count())")
BENCH=(scripts/bench_step.py --device "$DEVICE" --size "$SIZE" --precision bf16-mixed --fixed-batch --steps "$STEPS")
INFER=(scripts/bench_infer.py --device "$DEVICE" --size "$SIZE" --variants bf16 --rounds "$ROUNDS" --decode 4)

step paper_eager 90 "$PY" "${BENCH[@]}" --sync-check --json "$OUT/paper_eager.json" "${PAPER[@]}"
step release_eager 90 "$PY" "${BENCH[@]}" --sync-check --json "$OUT/release_eager.json" "${RELEASE[@]}"
step paper_predict 60 "$PY" "${INFER[@]}" "${PAPER[@]}"
step release_predict 60 "$PY" "${INFER[@]}" --variants bf16+band "${RELEASE[@]}"
if [ "$MODE" = cpu ] || [ "$GPUS" -ge 2 ]; then
  if [ "$MODE" = gpu ]; then DDP=(trainer.accelerator=gpu trainer.devices=2); else
    DDP=(trainer.accelerator=cpu trainer.devices=2 trainer.precision=32-true); fi
  step ddp_2 120 env OMP_NUM_THREADS=1 "$PY" -m e2e_him.train experiment=paper_r50 debug=smoke trainer=ddp \
    "${DDP[@]}" logger=csv picture_images=0 "paths.log_dir=$OUT/ddp" callbacks.val_image_panels.dirpath=null
else
  echo "== ddp_2: skipped, $GPUS GPU(s)"
fi
step paper_compiled 180 "$PY" "${BENCH[@]}" --compile --json "$OUT/paper_compiled.json" "${PAPER[@]}" "${COMPILE[@]}"
step release_compiled 180 "$PY" "${BENCH[@]}" --compile --json "$OUT/release_compiled.json" "${RELEASE[@]}" \
  "${COMPILE[@]}"

echo "== summary ($MODE, $((SECONDS)) s; results in $OUT)"
"$PY" - "$OUT" <<'PYEOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print("| layout | forward | steps / s | peak memory (GiB) | host syncs (forward, loss) |")
print("|---|---|---|---|---|")
for layout in ("paper", "release"):
    for kind in ("eager", "compiled"):
        path = out / f"{layout}_{kind}.json"
        if path.is_file():
            r = json.loads(path.read_text())
            mem = f"{r['peak_memory_gib']:.1f}" if r.get("peak_memory_gib") else "-"
            syncs = f"{r['syncs']['forward']}, {r['syncs']['loss']}" if r.get("syncs") else "-"
            print(f"| {layout} | {kind} | {r['steps_per_s']:.2f} | {mem} | {syncs} |")
PYEOF
if [ ${#FAILED[@]} -gt 0 ]; then
  printf 'gpu_check: FAILED: %s\n' "${FAILED[@]}" >&2
  exit 1
fi
echo "gpu_check: all steps passed"

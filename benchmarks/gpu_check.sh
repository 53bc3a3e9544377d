#!/usr/bin/env bash
# The GPU checks of issue 23, ready to run on one CUDA GPU in under 8 minutes:
#
#     bash benchmarks/gpu_check.sh [OUT]        # OUT: where runs go (default: a new temporary folder)
#
# Run from anywhere, with iclab installed (the README's first command, with a CUDA build of torch). Each check
# prints one summary line starting with "gpu_check:":
#   1. the demo (`iclab demo`) trained with bf16 autocast and fused AdamW: training seconds, steps/s, held-out
#      error / d at k = 2d (in-context learning: below 0.1);
#   2. the paper-scale Garg et al. step (d = 20, 41 points, 12 x 256 x 8, batch 64), fp32 and bf16 with fused
#      AdamW: steps/s against the step's own matmul floor (benchmarks/step_speed.py);
#   3. resume on CUDA is bit for bit the uninterrupted run (benchmarks/resume_check.py), fp32 and bf16.
# Without a CUDA GPU it says so and runs the same checks on the CPU at toy sizes (seconds, not minutes): that
# fallback is what the test suite runs; the CUDA path has not run on a GPU yet (docs/benchmarks.md).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$(mktemp -d -t iclab-gpu-check-XXXXXX)}"
mkdir -p "$out"
py="${PYTHON:-python}"

if "$py" -c "import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    device=cuda
    smoke=()
    demo_size=()
    steps=200
    echo "gpu_check: $("$py" -c "import torch; print(torch.cuda.get_device_name(0), 'torch', torch.__version__)")"
else
    device=cpu
    smoke=(--smoke)
    demo_size=(--set train.steps=60 --set train.eval_every=20 --set train.checkpoint_every=30 --set eval.n_prompts=128)
    steps=8
    echo "gpu_check: no CUDA GPU here: the CPU fallback, at toy sizes (its figures say nothing about a GPU)"
fi
start=$SECONDS

# 1. the demo, bf16 autocast + fused AdamW
"$py" -m iclab demo --out "$out/demo" --overwrite --set train.device=$device --set train.precision=bf16 \
    --set train.adamw=fused "${demo_size[@]}" > "$out/demo.log" 2>&1 || { tail -5 "$out/demo.log"; exit 1; }
"$py" - "$out/demo" <<'EOF'
import csv, json, sys
from pathlib import Path

run = Path(sys.argv[1])
lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
trained = [l for l in lines if "loss" in l][-1]
rows = list(csv.DictReader(open(run / "eval" / "curves.csv")))
k = max(int(r["k"]) for r in rows if r["learner"] == "model")
err = {r["learner"]: float(r["mean"]) for r in rows if int(r["k"]) == k and r["shift"] == "standard"}
verdict = "learns in context" if err["model"] < 0.1 else "does not reach 0.1"
print(
    f"gpu_check: demo (bf16, fused AdamW): {trained['step']} steps in {trained['elapsed_s']:.1f} s "
    f"({trained['step'] / trained['elapsed_s']:.1f} steps/s); held-out error / d at k = {k}: {err['model']:.3f} "
    f"({verdict}; least squares {err.get('least_squares', float('nan')):.3f})"
)
EOF

# 2. the paper-scale step, fp32 and bf16
for precision in fp32 bf16; do
    line=$("$py" "$here/step_speed.py" --size paper --device $device --precision $precision --adamw fused \
        --steps 30 "${smoke[@]}")
    echo "gpu_check: $line"
done

# 3. resume is exact on the device
for precision in fp32 bf16; do
    line=$("$py" "$here/resume_check.py" "$out/resume-$precision" --device $device --precision $precision \
        --steps $steps "${smoke[@]}") || { echo "gpu_check: $line"; exit 1; }
    echo "gpu_check: $line"
done
echo "gpu_check: all checks done in $((SECONDS - start)) s; runs in $out"

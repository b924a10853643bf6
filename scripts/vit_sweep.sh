#!/usr/bin/env bash
# The vision transformers of configs/vit/ on MNIST (every attention x position config shipped): train
# each config for every seed given, evaluate the best checkpoint on the test split, then measure each
# config's training step side by side (`kiln bench train-step`, all configs in one command, rounds
# alternating), and print Markdown tables for docs/results.md.
#
#   KILN_DATA_DIR=../shared/datasets scripts/vit_sweep.sh [SEED ...]        (default: seed 0)
#   CONFIGS="configs/vit/softmax_rope.toml ..." picks the configs (default: all of configs/vit/).
#
# KILN=path/to/kiln picks the binary (default $CARGO_TARGET_DIR/release/kiln, else
# target/release/kiln, built first). Runs go under runs/vit-sweep/; the log of every command is runs/vit-sweep/sweep.log.
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=("${@:-0}")
if [[ -z "${KILN:-}" ]]; then
    cargo build --release --quiet
    KILN=${CARGO_TARGET_DIR:-target}/release/kiln
fi
read -r -a configs <<<"${CONFIGS:-$(echo configs/vit/*.toml)}"
out=runs/vit-sweep
mkdir -p "$out"
log="$out/sweep.log"
rows=()
for config in "${configs[@]}"; do
    name=$(basename "$config" .toml)
    for seed in "${seeds[@]}"; do
        dir="$out/$name-s$seed"
        rm -rf "${dir:?}"
        echo "== $name seed $seed" | tee -a "$log"
        "$KILN" train "$config" --set "train.seed=$seed" --set "output.dir=\"$dir\"" >>"$log" 2>&1
        run="$dir/run-001"
        test_line=$("$KILN" eval "$run" | tee -a "$log" | grep -E '^ *test:')
        test=$(sed -E 's/.*accuracy ([0-9.]+).*/\1/' <<<"$test_line")
        row=$(python3 - "$run" "$test" <<'PY'
import json, sys
summary = json.load(open(sys.argv[1] + "/summary.json"))
best = summary["best"]
minutes, seconds = divmod(round(summary["train_seconds"]), 60)
print(f"{best['value']:.4f} (step {best['step']}) | {sys.argv[2]} | {summary['step']} | {minutes}m{seconds:02d}s")
PY
)
        rows+=("| \`$config\` | $seed | $row |")
    done
done
echo
echo "| config | seed | best valid accuracy | test accuracy (best checkpoint) | steps | wall time |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "== training step, side by side" | tee -a "$log"
"$KILN" bench train-step "${configs[@]}" --warmup 3 --steps 20 --rounds 3 2>&1 | tee -a "$log"

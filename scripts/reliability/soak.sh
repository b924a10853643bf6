#!/usr/bin/env bash
# Soak: train for DURATION seconds (default 3600) and sample the process's resident memory every
# INTERVAL seconds (default 30) into OUT.csv; report the growth after warm-up and a fitted slope.
# Evaluations, checkpoints and metric logging run all along (every 200 / 500 / 50 steps).
#
#   scripts/reliability/soak.sh [DURATION] [INTERVAL] [OUT]      (KILN=path/to/kiln)
set -euo pipefail
DURATION=${1:-3600}
INTERVAL=${2:-30}
OUT=${3:-soak.csv}
cd "$(dirname "$0")/../.."
KILN=${KILN:-${CARGO_TARGET_DIR:-target}/release/kiln}
[ -x "$KILN" ] || cargo build --release --quiet
WORK=$(mktemp -d)
cat > "$WORK/config.toml" <<TOML
[model]
kind = "classifier"
[model.encoder]
d_model = 64
n_heads = 4
n_layers = 2
d_ff = 128
dropout = 0.1
attention = { kind = "softmax" }
position = { kind = "rope" }
[data]
kind = "listops"
n_train = 20000
n_valid = 500
n_test = 500
min_len = 4
max_len = 40
max_depth = 3
max_args = 4
[train]
batch_size = 32
steps = 100000000
optimizer = { kind = "adamw", lr = 1e-3 }
grad_clip = 1.0
eval_every = 200
log_every = 50
checkpoint_every = 500
keep_checkpoints = 2
[output]
dir = "$WORK/runs"
TOML
"$KILN" train "$WORK/config.toml" > "$WORK/train.log" 2>&1 &
pid=$!
echo "seconds,rss_kib,step" > "$OUT"
start=$(date +%s)
while kill -0 $pid 2>/dev/null && [ $(( $(date +%s) - start )) -lt "$DURATION" ]; do
    rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    step=$(grep -o 'step [0-9]*' "$WORK/train.log" | tail -1 | cut -d' ' -f2 || true)
    echo "$(( $(date +%s) - start )),$rss,${step:-0}" >> "$OUT"
    sleep "$INTERVAL"
done
kill -INT $pid 2>/dev/null || true
wait $pid || true
python3 - "$OUT" <<'PY'
import csv, sys
rows = [(float(r["seconds"]), float(r["rss_kib"]) / 1024, int(r["step"])) for r in csv.DictReader(open(sys.argv[1]))]
rows = [r for r in rows if r[1] > 0]
t, m, s = zip(*rows)
warm = [r for r in rows if r[0] >= 0.1 * t[-1]]  # after the first tenth of the run
wt, wm = [r[0] for r in warm], [r[1] for r in warm]
n = len(wt); mt = sum(wt) / n; mm = sum(wm) / n
slope = sum((a - mt) * (b - mm) for a, b in zip(wt, wm)) / max(sum((a - mt) ** 2 for a in wt), 1e-9)
print(f"soak: {t[-1] / 60:.1f} min, {s[-1]} steps, {len(rows)} samples")
print(f"RSS: start {m[0]:.1f} MiB, after warm-up {wm[0]:.1f} MiB, end {m[-1]:.1f} MiB, max {max(m):.1f} MiB")
print(f"growth after warm-up: {wm[-1] - wm[0]:+.1f} MiB; fitted slope {slope * 3600:+.2f} MiB/hour")
PY
rm -rf "$WORK"

#!/usr/bin/env bash
# Crash safety: SIGKILL `kiln train` at random moments (N times, default 12; checkpoints are written
# every step so many kills land inside a checkpoint write), resume after each kill, and check that
#   - every checkpoint on disk verifies (checksums recorded in state.json match the files),
#   - the run always resumes, and
#   - the final model and metrics equal those of an uninterrupted run, bit for bit.
# Then a failing write: a resume under `ulimit -f` (writes beyond a size fail with EFBIG, as on a full
# disk) must stop with an error that keeps the previous checkpoint, and the run must still finish
# equal to the uninterrupted one.
#
#   scripts/reliability/crash_test.sh [N] [SEED]      (KILN=path/to/kiln to use another binary)
set -euo pipefail
N=${1:-12}
SEED=${2:-$RANDOM}
cd "$(dirname "$0")/../.."
KILN=${KILN:-${CARGO_TARGET_DIR:-target}/release/kiln}
[ -x "$KILN" ] || cargo build --release --quiet
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
RANDOM=$SEED
echo "crash test: $N kills, seed $SEED, work dir $WORK"

cat > "$WORK/config.toml" <<TOML
[model]
kind = "classifier"
[model.encoder]
d_model = 128
n_heads = 4
n_layers = 2
d_ff = 256
dropout = 0.1
attention = { kind = "softmax" }
position = { kind = "rope" }
[data]
kind = "listops"
n_train = 2000
n_valid = 100
n_test = 100
min_len = 4
max_len = 60
max_depth = 3
max_args = 4
[train]
batch_size = 16
steps = 1500
optimizer = { kind = "adamw", lr = 1e-3 }
schedule = { kind = "cosine", warmup_steps = 20 }
grad_clip = 1.0
eval_every = 50
log_every = 10
checkpoint_every = 1
keep_checkpoints = 3
[output]
dir = "$WORK/runs"
TOML

digest() { # the weights digest and metrics of a run's latest checkpoint
    "$KILN" eval "$1" --checkpoint latest 2>/dev/null | tail -n +2
}

start=$(date +%s)
"$KILN" train "$WORK/config.toml" --set "output.dir=\"$WORK/reference\"" > "$WORK/reference.log" 2>&1
REF=$(ls -d "$WORK"/reference/run-*)
echo "uninterrupted run: $(( $(date +%s) - start )) s"
want=$(digest "$REF")

RUN=""
kills=0; mid_write=0; fallbacks=0
while [ $kills -lt "$N" ]; do
    if [ -z "$RUN" ]; then
        "$KILN" train "$WORK/config.toml" > "$WORK/attempt.log" 2>&1 &
    else
        "$KILN" train --resume "$RUN" > "$WORK/attempt.log" 2>&1 &
    fi
    pid=$!
    # 0.5 to 4.5 s: start-up (data, model) takes about a second, then steps and writes.
    sleep "$(( RANDOM % 4 )).$(( RANDOM % 10 ))"
    sleep 0.5
    if ! kill -9 $pid 2>/dev/null; then
        wait $pid || true
        echo "the run finished before kill $((kills + 1)); log:"; tail -3 "$WORK/attempt.log"; break
    fi
    wait $pid 2>/dev/null || true
    kills=$((kills + 1))
    [ -z "$RUN" ] && RUN=$(ls -d "$WORK"/runs/run-* 2>/dev/null | head -1)
    [ -n "$RUN" ] || continue
    grep -q "latest names" "$WORK/attempt.log" && fallbacks=$((fallbacks + 1))
    # Evidence that the kill hit a write or a deletion: a checkpoint left under its temporary name.
    if ls -d "$RUN"/checkpoints/.tmp-* >/dev/null 2>&1; then mid_write=$((mid_write + 1)); fi
    step=$(cat "$RUN/checkpoints/latest" 2>/dev/null || echo none)
    for ck in "$RUN"/checkpoints/step-*; do
        [ -d "$ck" ] || continue
        if ! "$KILN" eval "$RUN" --checkpoint "$(basename "$ck")" > "$WORK/verify.log" 2>&1; then
            echo "FAIL: after kill $kills, $(basename "$ck") does not load:"; cat "$WORK/verify.log"; exit 1
        fi
    done
    echo "kill $kills: latest $step, $(ls -d "$RUN"/checkpoints/step-* 2>/dev/null | wc -l) checkpoints verified"
done
[ -n "$RUN" ] || { echo "FAIL: no run directory was created"; exit 1; }

# A failing write keeps the previous checkpoint: files over 200 KiB cannot be written (the model is 2 MB).
before=$(cat "$RUN/checkpoints/latest")
if bash -c "trap '' XFSZ; ulimit -f 200; exec \"$KILN\" train --resume \"$RUN\"" > "$WORK/full.log" 2>&1; then
    echo "FAIL: a run that cannot write its checkpoint succeeded"; exit 1
fi
grep -q "earlier checkpoints are intact" "$WORK/full.log" || { echo "FAIL: no clear message:"; tail -3 "$WORK/full.log"; exit 1; }
after=$(cat "$RUN/checkpoints/latest")
[ "$before" = "$after" ] || { echo "FAIL: latest moved from $before to $after"; exit 1; }
"$KILN" eval "$RUN" --checkpoint latest > /dev/null 2>&1 || { echo "FAIL: the kept checkpoint does not load"; exit 1; }
echo "failing write: $(grep '^error:' "$WORK/full.log" | head -1)"
echo "  latest still $after and loads"

"$KILN" train --resume "$RUN" > "$WORK/final.log" 2>&1 || { echo "FAIL: the last resume failed"; tail "$WORK/final.log"; exit 1; }
got=$(digest "$RUN")
if [ "$got" != "$want" ]; then
    echo "FAIL: the resumed model differs from the uninterrupted one"; echo "want: $want"; echo "got:  $got"; exit 1
fi
if ! diff -q "$REF/metrics.csv" "$RUN/metrics.csv" > /dev/null; then
    echo "FAIL: metrics.csv differs"; diff "$REF/metrics.csv" "$RUN/metrics.csv" | head; exit 1
fi
echo "PASS: $kills kills ($mid_write inside a checkpoint write or deletion, $fallbacks resumes past a broken latest), one failing write;"
echo "      final weights and metrics.csv equal the uninterrupted run's ($(echo "$got" | head -1))"

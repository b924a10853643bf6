#!/usr/bin/env bash
# Seconds per training step of CONFIG on one local device and over `kiln serve` workers on this
# machine (docs/distributed.md): every process computes on one thread (RAYON_NUM_THREADS=1), so that
# two workers on a 2-core machine stand for two machines, less the network.
#
#   KILN=target/release/kiln scripts/bench/distributed.sh CONFIG [--set KEY=VALUE ...]
#
# KILN must be built with `--features distributed` (or `distributed-fusion`). Each setting trains
# 5 and then 25 steps (no evaluation but the final one, no checkpoint but the final one) and reports
# (t25 - t5) / 20 from the runs' summary.json, which cancels start-up, the first steps' warm-up, the
# final evaluation and the final checkpoint. Settings:
#   local         one flex device in the trainer's process (Kiln's kernels)
#   one-worker    one worker holds the model, the optimiser and the batch; the trainer only sends
#                 operations (compute on Burn's flex ops + the cost of driving it remotely)
#   two-workers   two workers, the first holds the model and the optimiser; per step the second gets
#                 the parameters and sends back its gradients, worker to worker
#   local+worker  the trainer's own flex device holds the model, one worker computes the second
#                 micro-batch; parameters and gradients go through the trainer
# Output: one line per setting: seconds per step, examples per second.
set -euo pipefail
KILN=${KILN:-${CARGO_TARGET_DIR:-target}/release/kiln}
config=$1
shift
out=$(mktemp -d)
export RAYON_NUM_THREADS=1
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; rm -rf "$out"' EXIT

start_worker() { # start_worker N: a worker on a free port; its name in $out/wN.name
  "$KILN" serve --listen 127.0.0.1:0 >"$out/w$1.name" 2>"$out/w$1.log" &
  pids+=($!)
  for _ in $(seq 100); do
    [ -s "$out/w$1.name" ] && return 0
    sleep 0.1
  done
  echo "worker $1 did not start:" >&2
  cat "$out/w$1.log" >&2
  exit 1
}

train_seconds() { # train_seconds STEPS SET...: the summary's train_seconds of a fresh run, and its batch_size
  local dir steps=$1
  shift
  dir=$(mktemp -d -p "$out")
  "$KILN" train "$config" "$@" --set "train.steps=$steps" --set train.eval_every=1000000 \
    --set train.checkpoint_every=1000000 --set "output.dir=\"$dir\"" >"$dir/log" 2>&1 ||
    { cat "$dir/log" >&2; exit 1; }
  python3 - "$dir" <<'PY'
import glob, json, sys, tomllib
run = glob.glob(sys.argv[1] + "/run-*")[0]
seconds = json.load(open(run + "/summary.json"))["train_seconds"]
batch = tomllib.load(open(run + "/config.toml", "rb"))["train"]["batch_size"]
print(seconds, batch)
PY
}

measure() { # measure NAME REPLICAS SET...
  local name=$1 replicas=$2
  shift 2
  local t5 t25
  t5=$(train_seconds 5 "$@")
  t25=$(train_seconds 25 "$@")
  python3 -c 'import sys; t5,_,t25,b,k=map(float,sys.argv[1:6]); s=(t25-t5)/20; print(f"{sys.argv[6]:<13} {s*1000:8.1f} ms/step {b*k/s:8.1f} examples/s")' \
    $t5 $t25 "$replicas" "$name"
}

start_worker 1
start_worker 2
w1=$(cat "$out/w1.name")
w2=$(cat "$out/w2.name")
set_args=("$@")
measure local 1 --device flex "${set_args[@]}"
measure one-worker 1 --set "device.devices=[\"$w1\"]" "${set_args[@]}"
measure two-workers 2 --set "device.devices=[\"$w1\", \"$w2\"]" --set train.grad_accum=1 "${set_args[@]}"
measure local+worker 2 --set "device.devices=[\"flex\", \"$w2\"]" --set train.grad_accum=1 "${set_args[@]}"

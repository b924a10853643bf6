#!/usr/bin/env bash
# Exercise the GPU (wgpu) path without a GPU: Mesa's lavapipe is a Vulkan driver on the CPU.
# Installs it (Debian/Ubuntu, as root), builds kiln with the wgpu feature, trains the quickstart
# for 100 steps on the wgpu CPU adapter, then evaluates that checkpoint on wgpu and on flex:
# the two evaluations must agree. Then data parallelism on wgpu: two replicas on the CPU adapter,
# and a wgpu + flex pair, each against one device with the same micro-batches accumulated.
# Slow (lavapipe is a software rasteriser): ~20 min cold build, ~3 min of training. Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq mesa-vulkan-drivers libvulkan1
fi
target="${CARGO_TARGET_DIR:-target}-wgpu"
CARGO_TARGET_DIR="$target" cargo build --release -p kiln-train --features wgpu
kiln="$target/release/kiln"
out=$(mktemp -d)
"$kiln" train configs/quickstart.toml --device cpu --set train.steps=100 --set train.eval_every=50 \
  --set output.dir="\"$out\"" | tee "$out/train.txt"
run=$(sed -n 's/^run directory: //p' "$out/train.txt")
"$kiln" eval "$run" --device cpu | tee "$out/eval-wgpu.txt"
"$kiln" eval "$run" --device flex | tee "$out/eval-flex.txt"
if diff <(tail -n 2 "$out/eval-wgpu.txt") <(tail -n 2 "$out/eval-flex.txt"); then
  echo "wgpu (lavapipe) and flex agree on the wgpu-trained checkpoint"
else
  echo "wgpu and flex evaluations differ" >&2
  exit 1
fi

# Data parallelism through burn-train's multi-device step on the wgpu backend. As with two flex
# replicas (the test `two_devices_train_as_one_device_with_gradient_accumulation`), two devices with
# grad_accum = 1 see the micro-batches one device sees with grad_accum = 2, so with dropout off the
# runs must agree (up to the float rounding of summing gradients on another backend).
dp_run() {
  "$kiln" train configs/quickstart.toml --set train.steps=12 --set train.eval_every=12 --set train.log_every=1 \
    --set model.encoder.dropout=0 \
    --set output.dir="\"$out/dp\"" "$@" > "$out/dp.txt"
  sed -n 's/^run directory: //p' "$out/dp.txt"
}
one=$(dp_run --device cpu --set train.grad_accum=2)
two=$(dp_run --set 'device.devices=["cpu", "cpu"]' --set train.grad_accum=1)
mixed=$(dp_run --set 'device.devices=["cpu", "flex"]' --set train.grad_accum=1)
python3 - "$one" "$two" "$mixed" <<'PY'
import sys
def losses(run):
    rows = [l.split(",") for l in open(run + "/metrics.csv") if ",loss," in l]
    return [float(r[3]) for r in rows]
ref = losses(sys.argv[1])
print(f"one wgpu device, grad_accum = 2: train and valid loss at step 12: {ref[-2]!r}, {ref[-1]!r}")
for name, run in (("two wgpu replicas", sys.argv[2]), ("wgpu + flex", sys.argv[3])):
    got = losses(run)
    worst = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(ref, got))
    assert len(got) == len(ref), f"{name}: {len(got)} losses against {len(ref)}"
    assert worst < 1e-4, f"{name}: losses differ from one device by up to {worst:.2e} (relative)"
    print(f"{name}: {got[-2]!r}, {got[-1]!r}; every logged loss within {worst:.1e} (relative) of one device")
PY

#!/usr/bin/env bash
# Exercise the GPU (wgpu) path without a GPU: Mesa's lavapipe is a Vulkan driver on the CPU.
# Installs it (Debian/Ubuntu, as root), builds kiln with the wgpu feature, trains the quickstart
# for 100 steps on the wgpu CPU adapter, then evaluates that checkpoint on wgpu and on flex:
# the two evaluations must agree. Slow (lavapipe is a software rasteriser): ~20 min cold build,
# ~1-2 min of training. Not run by CI.
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

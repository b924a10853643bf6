#!/usr/bin/env bash
# Download the four MNIST IDX files (gzipped, as published) into $1 (default: data/).
# Then: KILN_DATA_DIR=data kiln train configs/vit/softmax_rope2d.toml
set -euo pipefail
dir="${1:-data}/mnist"
mkdir -p "$dir"
# The original host (yann.lecun.com/exdb/mnist) often refuses downloads; this is PyTorch's mirror of the same files.
base="https://ossci-datasets.s3.amazonaws.com/mnist"
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  curl -fL --retry 3 -o "$dir/$f.gz" "$base/$f.gz"
done
ls -l "$dir"

#!/usr/bin/env bash
# Download Tiny Shakespeare (Karpathy's char-rnn corpus, public-domain text) into $1 (default: data/).
# Then: KILN_DATA_DIR=data kiln train configs/lm/softmax.toml
set -euo pipefail
dir="${1:-data}/tinyshakespeare"
mkdir -p "$dir"
curl -fL --retry 3 -o "$dir/input.txt" \
  https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt
echo "wrote $dir/input.txt ($(wc -c < "$dir/input.txt") bytes; expected 1115394)"

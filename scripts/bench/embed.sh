#!/usr/bin/env bash
# Sentence-embedding throughput, Kiln and PyTorch side by side on this machine (one run, same
# sentences: both sides of the STS-B test split; same batch size; mean pooling).
#   KILN_BERT_DIR=... KILN_DATA_DIR=... scripts/bench/embed.sh [PYTHON]
# PYTHON defaults to python3 and needs torch and transformers; without them only Kiln is measured.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${KILN_BERT_DIR:?set KILN_BERT_DIR (scripts/download_minilm.sh)}"
: "${KILN_DATA_DIR:?set KILN_DATA_DIR (the directory holding stsb/)}"
py="${1:-python3}"
cargo build --release --quiet
"${CARGO_TARGET_DIR:-target}/release/kiln" bench embed --model "$KILN_BERT_DIR" --repeats 3
if "$py" -c "import torch, transformers" 2>/dev/null; then
  "$py" scripts/bench/embed_transformers.py "$KILN_BERT_DIR" "$KILN_DATA_DIR/stsb" --repeats 3
else
  echo "($py has no torch/transformers: PyTorch side skipped)"
fi

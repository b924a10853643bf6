#!/usr/bin/env bash
# Download the STS Benchmark (Cer et al. 2017) as the single TSV that `kiln sts` reads:
#   scripts/download_stsb.sh [DATA_DIR]    # writes DATA_DIR/stsb/stsbenchmark.tsv.gz (default: data)
# The file is the sentence-transformers packaging of the benchmark (columns split, genre, dataset,
# year, sid, score, sentence1, sentence2); the original release is at
# https://ixa2.si.ehu.eus/stswiki/index.php/STSbenchmark.
set -euo pipefail
dest="${1:-data}/stsb"
mkdir -p "$dest"
url="https://sbert.net/datasets/stsbenchmark.tsv.gz"
curl -fL --retry 3 -o "$dest/stsbenchmark.tsv.gz.part" "$url"
mv "$dest/stsbenchmark.tsv.gz.part" "$dest/stsbenchmark.tsv.gz"
echo "$dest/stsbenchmark.tsv.gz: $(zcat "$dest/stsbenchmark.tsv.gz" | tail -n +2 | wc -l) pairs (5749 train, 1500 dev, 1379 test expected)"

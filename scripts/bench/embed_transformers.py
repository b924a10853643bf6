#!/usr/bin/env python3
"""The PyTorch side of `kiln bench embed`: the same sentences, batch size, length-sorted batching,
mean pooling and timing (one warm-up pass, median of N runs) with Hugging Face `transformers`.

    python3 -m pip install torch transformers
    python3 scripts/bench/embed_transformers.py CHECKPOINT_DIR [STSB_DIR] [--batch-size 64] [--repeats 3] [--threads N]

Run it next to `kiln bench embed` on the same machine (scripts/bench/embed.sh does both).
"""
import argparse
import csv
import gzip
import os
import statistics
import time

import torch
from transformers import AutoModel, AutoTokenizer


def stsb_test_sentences(d: str) -> list:
    path = os.path.join(d, "stsbenchmark.tsv.gz")
    opener = gzip.open if os.path.exists(path) else open
    path = path if os.path.exists(path) else os.path.join(d, "stsbenchmark.tsv")
    with opener(path, "rt", encoding="utf-8") as f:
        rows = [r.rstrip("\n").split("\t") for r in f][1:]
    test = [r for r in rows if r[0] == "test"]
    return [r[6] for r in test] + [r[7] for r in test]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("checkpoint")
    ap.add_argument("stsb", nargs="?", default=os.path.join(os.environ.get("KILN_DATA_DIR", "."), "stsb"))
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--max-seq-len", type=int, default=256)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    tok = AutoTokenizer.from_pretrained(a.checkpoint)
    model = AutoModel.from_pretrained(a.checkpoint).eval()
    sentences = stsb_test_sentences(a.stsb)
    lengths = [len(tok(s, truncation=True, max_length=a.max_seq_len)["input_ids"]) for s in sentences]
    order = sorted(range(len(sentences)), key=lambda i: -lengths[i])

    def run() -> None:
        with torch.inference_mode():
            for i in range(0, len(order), a.batch_size):
                batch = [sentences[j] for j in order[i : i + a.batch_size]]
                enc = tok(batch, padding=True, truncation=True, max_length=a.max_seq_len, return_tensors="pt")
                out = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(out.dtype)
                _ = (out * mask).sum(1) / mask.sum(1)

    run()  # warm-up
    times = []
    for _ in range(a.repeats):
        t = time.perf_counter()
        run()
        times.append(time.perf_counter() - t)
    med = statistics.median(times)
    n = len(sentences)
    print(
        f"transformers {__import__('transformers').__version__} / torch {torch.__version__} embed: {n} sentences, "
        f"{sum(lengths)} tokens, batch {a.batch_size}, {a.threads} threads: median {med:.3f} s over {a.repeats} runs "
        f"= {n / med:.0f} sentences/s, {sum(lengths) / med:.0f} tokens/s (runs: {', '.join(f'{t:.3f}' for t in times)})"
    )


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference outputs of a Hugging Face BERT checkpoint for Kiln's loader test.

Runs `transformers.BertModel` (PyTorch, CPU, float32, eval mode) on a few fixed sentences as one
padded batch and writes, per sentence: the token ids, the last layer's hidden states at the real tokens (and the
first layer's for the first sentence), the pooler output, and the mean-pooled sentence vector (padding excluded,
as sentence-transformers does). CI never runs this; the JSON it writes is committed.

    python3 -m pip install torch transformers
    python3 scripts/reference/bert_reference.py CHECKPOINT_DIR \
        crates/kiln-transformer/tests/fixtures/minilm_reference.json
"""
import json
import sys

import torch
from transformers import BertModel, BertTokenizerFast

SENTENCES = [
    "A plane is taking off.",
    "Kiln loads BERT checkpoints exactly; naïve café résumé!",
    "The quick brown fox jumps over the lazy dog, then sleeps under a very old oak tree near the river bank.",
    "日本語 and 中文 characters are split one by one.",
]


def main(ckpt: str, out: str) -> None:
    torch.manual_seed(0)
    tok = BertTokenizerFast.from_pretrained(ckpt)
    model = BertModel.from_pretrained(ckpt).eval()
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.no_grad():
        out_ = model(**batch, output_hidden_states=True)
    mask = batch["attention_mask"].unsqueeze(-1).float()
    last = out_.last_hidden_state
    mean = (last * mask).sum(1) / mask.sum(1)
    rows = []
    for i, s in enumerate(SENTENCES):
        n = int(batch["attention_mask"][i].sum())
        rows.append({
            "text": s,
            "ids": batch["input_ids"][i, :n].tolist(),
            "last": [[round(v, 5) for v in r] for r in last[i, :n].tolist()],
            "pooler": [round(v, 5) for v in out_.pooler_output[i].tolist()],
            "mean": [round(v, 5) for v in mean[i].tolist()],
        })
        if i == 0:  # the first block's output, for one sentence (keeps the fixture small)
            rows[-1]["first"] = [[round(v, 5) for v in r] for r in out_.hidden_states[1][i, :n].tolist()]
    meta = {"torch": torch.__version__, "transformers": __import__("transformers").__version__, "checkpoint": ckpt.rstrip("/").split("/")[-2] if ckpt.rstrip("/").endswith("model") else ckpt}
    with open(out, "w") as f:
        json.dump({"generated_by": "scripts/reference/bert_reference.py", "versions": meta, "sentences": rows}, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])

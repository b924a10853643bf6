#!/usr/bin/env python3
"""A tiny random-weight BERT and its Hugging Face `transformers` outputs, for Kiln's loader test that
runs in every `cargo test` (no download): `crates/kiln-transformer/tests/tiny_bert_reference.rs`.

Builds `transformers.BertModel` from a small config (2 layers, width 16, 2 heads, a pooler), with
weights drawn wider than BERT's initialiser (std 0.3, LayerNorm gains and biases perturbed) so that
attention is far from uniform and every weight matters, and writes into OUT_DIR:

    config.json, model.safetensors   the checkpoint (`save_pretrained`, safetensors)
    reference.json                   inputs (ids, segment ids, lengths of a padded batch) and, in
                                     float32 eval mode, the embeddings, every layer's hidden states
                                     and the pooler output at the real tokens; the versions used

    python3 -m venv /tmp/ref && /tmp/ref/bin/pip install torch transformers safetensors
    /tmp/ref/bin/python scripts/reference/tiny_bert.py crates/kiln-transformer/tests/fixtures/tiny_bert
"""
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import BertConfig, BertModel

VOCAB, LENGTHS, MAX_LEN = 40, [9, 5, 12], 12


def main(out: str) -> None:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        type_vocab_size=2,
        hidden_act="gelu",
        layer_norm_eps=1e-12,
    )
    model = BertModel(config, add_pooling_layer=True).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            else:
                p.copy_(0.3 * torch.randn_like(p))
    out_dir = Path(out)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir, safe_serialization=True)

    ids = torch.randint(0, VOCAB, (len(LENGTHS), MAX_LEN))
    type_ids = torch.zeros_like(ids)
    type_ids[:, MAX_LEN // 2 :] = 1
    mask = torch.zeros_like(ids)
    for i, n in enumerate(LENGTHS):
        mask[i, :n] = 1
        ids[i, n:] = 0
        type_ids[i, n:] = 0
    with torch.no_grad():
        o = model(input_ids=ids, token_type_ids=type_ids, attention_mask=mask, output_hidden_states=True)

    def real(t: torch.Tensor) -> list:
        return [t[i, :n].tolist() for i, n in enumerate(LENGTHS)]

    reference = {
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "ids": ids.tolist(),
        "type_ids": type_ids.tolist(),
        "lengths": LENGTHS,
        "embeddings": real(o.hidden_states[0]),
        "layers": [real(h) for h in o.hidden_states[1:]],
        "pooler": o.pooler_output.tolist(),
    }
    (out_dir / "reference.json").write_text(json.dumps(reference) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])

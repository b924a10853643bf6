#!/usr/bin/env python3
"""PyTorch twin of `kiln bench train-step configs/bench/encoder_softmax.toml`: the same model, shapes,
optimiser and step, timed the same way, printed as one JSON line.

Model: token embedding (16 ListOps tokens) + learned positions, `torch.nn.TransformerEncoder` of 4
post-norm layers (d_model 256, 4 heads, FFN 1024 with GELU, dropout 0.1), mean pooling over real
tokens, a linear head to 10 classes, cross-entropy; AdamW (lr 1e-4, weight decay 0.01), global-norm
clipping at 1.0. Batches: 16 sequences padded to 128 tokens, lengths drawn in 101..128 like the
ListOps window of the Kiln config, with the key padding mask. A step is: build the batch, forward,
backward, clip, optimiser step (and zeroing the gradients). Median of `--steps` steps after
`--warmup` untimed ones.

Differences kept on purpose (what a PyTorch user gets from `nn.TransformerEncoderLayer`): it also
applies dropout to the attention probabilities, which Kiln's block does not, and it fuses the
query/key/value projections into one matrix.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F
from torch import nn


class Classifier(nn.Module):
    def __init__(self, vocab=16, classes=10, d_model=256, heads=4, layers=4, d_ff=1024, dropout=0.1, max_len=128):
        super().__init__()
        self.embedding = nn.Embedding(vocab, d_model)
        self.position = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, d_ff, dropout, activation="gelu", batch_first=True, norm_first=False
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, tokens, padding):
        x = self.embedding(tokens) + self.position[: tokens.shape[1]]
        x = self.encoder(x, src_key_padding_mask=padding)
        keep = (~padding).unsqueeze(-1).to(x.dtype)
        pooled = (x * keep).sum(1) / keep.sum(1)
        return self.head(pooled)


def step_args(p):
    """Add the timing options shared by the twins in this folder, parse, and apply `--threads` and the
    model seed."""
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    return a


def median_step_ms(model, opt, batch_and_loss, warmup, steps):
    """Median milliseconds of `steps` training steps after `warmup` untimed ones: batch and loss, backward,
    global-norm clipping at 1.0, optimiser step, gradients zeroed (shared by the twins in this folder)."""
    times = []
    for step in range(warmup + steps):
        start = time.perf_counter()
        loss = batch_and_loss()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--min-len", type=int, default=101)
    a = step_args(p)
    model = Classifier(max_len=a.seq).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, weight_decay=0.01)
    g = torch.Generator().manual_seed(1)

    def batch_and_loss():
        tokens = torch.randint(1, 16, (a.batch, a.seq), generator=g)
        lengths = torch.randint(a.min_len, a.seq + 1, (a.batch,), generator=g)
        padding = torch.arange(a.seq).unsqueeze(0) >= lengths.unsqueeze(1)
        tokens = tokens.masked_fill(padding, 0)
        labels = torch.randint(0, 10, (a.batch,), generator=g)
        return F.cross_entropy(model(tokens, padding), labels)

    step_ms = median_step_ms(model, opt, batch_and_loss, a.warmup, a.steps)
    print(json.dumps({
        "impl_name": "pytorch", "config": "configs/bench/encoder_softmax.toml", "items_per_step": a.batch,
        "tokens_per_step": a.batch * a.seq, "step_ms": step_ms, "items_per_s": a.batch / step_ms * 1e3,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""PyTorch twins of `kiln bench train-step` on the pre-norm configs of the results tables: the same
models, shapes, optimisers and steps, timed the same way, printed as one JSON line.

`--model lm` twins `configs/lm/softmax.toml`, nanoGPT's small CPU setting: character embedding (65
characters, Tiny Shakespeare's vocabulary) + learned positions, 4 pre-norm causal blocks of width 128
(4 heads, FFN 512), a final LayerNorm, a linear head to the 65 characters, cross-entropy over every
position; AdamW (lr 1e-3, betas 0.9/0.99, weight decay 0.1); a batch is 12 random windows of 64
characters (and their next characters) from a fixed random corpus.

`--model vit` twins `configs/vit/softmax_learned.toml`: 28 × 28 images cut into 49 patches of 4 × 4
pixels, a linear patch embedding + learned positions, 4 pre-norm blocks of width 64 (4 heads, FFN
128), a final LayerNorm, mean pooling, a linear head to 10 classes, cross-entropy; AdamW (lr 2e-3,
weight decay 0.01); a batch is 64 random images in [0, 1) with random labels.

Both with Kiln's layer choices: a block is LayerNorm, multi-head attention through
`scaled_dot_product_attention` with fused query/key/value projections, residual, LayerNorm, FFN with
exact GELU, residual; biases everywhere, no weight tying, dropout 0, weight decay on every parameter
(as Burn's AdamW), global-norm clipping at 1.0. What the inputs are does not change the time. A step
is: build the batch, forward, backward, clip, optimiser step (and zeroing the gradients). Median of
`--steps` steps after `--warmup` untimed ones.
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn

from train_step_torch import median_step_ms, step_args


class Block(nn.Module):
    def __init__(self, d_model, heads, d_ff, causal):
        super().__init__()
        self.heads, self.causal = heads, causal
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.hidden = nn.Linear(d_model, d_ff)
        self.output = nn.Linear(d_ff, d_model)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=self.causal)
        x = x + self.out(a.transpose(1, 2).reshape(b, n, d))
        return x + self.output(F.gelu(self.hidden(self.norm2(x))))


class PreNorm(nn.Module):
    """Input embedding + learned positions, pre-norm blocks, final LayerNorm."""

    def __init__(self, embed, n, d_model, heads, layers, d_ff, causal):
        super().__init__()
        self.embed = embed
        self.position = nn.Parameter(torch.randn(n, d_model) * 0.02)
        self.blocks = nn.ModuleList(Block(d_model, heads, d_ff, causal) for _ in range(layers))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x):
        x = self.embed(x) + self.position[: x.shape[1]]
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class CharLm(nn.Module):
    def __init__(self, vocab=65, context=64, d_model=128, heads=4, layers=4, d_ff=512):
        super().__init__()
        self.body = PreNorm(nn.Embedding(vocab, d_model), context, d_model, heads, layers, d_ff, causal=True)
        self.head = nn.Linear(d_model, vocab)

    def forward(self, tokens):
        return self.head(self.body(tokens))


class Vit(nn.Module):
    def __init__(self, side=28, patch=4, d_model=64, heads=4, layers=4, d_ff=128, classes=10):
        super().__init__()
        self.patch = patch
        n = (side // patch) ** 2
        self.body = PreNorm(nn.Linear(patch * patch, d_model), n, d_model, heads, layers, d_ff, causal=False)
        self.head = nn.Linear(d_model, classes)

    def forward(self, images):
        b, h, w = images.shape
        p = self.patch
        patches = images.reshape(b, h // p, p, w // p, p).transpose(2, 3).reshape(b, -1, p * p)
        return self.head(self.body(patches).mean(dim=1))


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["lm", "vit"], default="lm")
    a = step_args(p)
    g = torch.Generator().manual_seed(1)
    if a.model == "lm":
        vocab, batch, context = 65, 12, 64
        config, items, tokens = "configs/lm/softmax.toml", batch * context, batch * context
        model = CharLm(vocab=vocab, context=context).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1)
        corpus = torch.randint(0, vocab, (1_000_000,), generator=g)
        offsets = torch.arange(context + 1)

        def batch_and_loss():
            starts = torch.randint(0, len(corpus) - context - 1, (batch,), generator=g)
            windows = corpus[starts.unsqueeze(1) + offsets]
            logits = model(windows[:, :-1])
            return F.cross_entropy(logits.reshape(-1, vocab), windows[:, 1:].reshape(-1))
    else:
        batch = 64
        config, items, tokens = "configs/vit/softmax_learned.toml", batch, batch * 49
        model = Vit().train()
        opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.01)

        def batch_and_loss():
            images = torch.rand(batch, 28, 28, generator=g)
            labels = torch.randint(0, 10, (batch,), generator=g)
            return F.cross_entropy(model(images), labels)

    step_ms = median_step_ms(model, opt, batch_and_loss, a.warmup, a.steps)
    print(json.dumps({
        "impl_name": "pytorch", "config": config, "items_per_step": items, "tokens_per_step": tokens,
        "step_ms": step_ms, "items_per_s": items / step_ms * 1e3,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }))


if __name__ == "__main__":
    main()

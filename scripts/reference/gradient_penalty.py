#!/usr/bin/env python3
"""The exact WGAN-GP gradient penalty (Gulrajani et al. 2017) of a two-hidden-layer ReLU critic and
its gradients in every weight and bias, by PyTorch's double backward (`autograd.grad(...,
create_graph=True)`, then `backward`), for the test of `kiln_gan::gradient_penalty` (which writes
the critic's input gradient as tensor operations instead).

Critic 2 -> 8 -> 8 -> 1 with ReLU, weights drawn with std 0.7 (seeded); a batch of 6 real and fake
points and their mixing weights; lambda 10. Weights are written in Burn's `[in, out]` layout.

    /tmp/ref/bin/pip install torch
    /tmp/ref/bin/python scripts/reference/gradient_penalty.py \
        crates/kiln-gan/tests/fixtures/gradient_penalty_reference.json
"""
import json
import sys

import torch


def main(out: str) -> None:
    torch.manual_seed(0)
    torch.set_default_dtype(torch.float64)
    widths = [2, 8, 8, 1]
    layers = [torch.nn.Linear(a, b) for a, b in zip(widths, widths[1:])]
    with torch.no_grad():
        for layer in layers:
            layer.weight.normal_(0.0, 0.7)
            layer.bias.normal_(0.0, 0.3)

    def critic(x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(layers):
            x = layer(x)
            if i + 1 < len(layers):
                x = torch.relu(x)
        return x.squeeze(1)

    real = torch.randn(6, 2)
    fake = torch.randn(6, 2) * 1.5 + 0.5
    alpha = torch.rand(6, 1)
    lam = 10.0
    x_hat = (real + alpha * (fake - real)).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    penalty = lam * ((grad.norm(2, dim=1) - 1.0) ** 2).mean()
    penalty.backward()
    reference = {
        "versions": {"torch": torch.__version__},
        "lambda": lam,
        "real": real.tolist(),
        "fake": fake.tolist(),
        "alpha": alpha.flatten().tolist(),
        "weights": [layer.weight.detach().T.tolist() for layer in layers],
        "biases": [layer.bias.detach().tolist() for layer in layers],
        "penalty": penalty.item(),
        "input_gradient": grad.detach().tolist(),
        "weight_gradients": [layer.weight.grad.T.tolist() for layer in layers],
        # The biases move the ReLU masks only (piecewise constant) and the last one not even that:
        # PyTorch leaves a gradient it never reached as None, zero here.
        "bias_gradients": [torch.zeros_like(l.bias).tolist() if l.bias.grad is None else l.bias.grad.tolist() for l in layers],
    }
    with open(out, "w") as f:
        json.dump(reference, f)
        f.write("\n")


if __name__ == "__main__":
    main(sys.argv[1])

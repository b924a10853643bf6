#!/usr/bin/env python3
"""Step time and throughput of Kiln's data parallelism over N machines, on paper, from the
measurements of scripts/bench/distributed.sh (docs/distributed.md).

The model of a step, for the topology Kiln runs (the trainer's own device first: it holds the model
and the optimiser, sends the parameters to each of the N - 1 workers and receives their gradients,
all over its own link):

    t(N) = c_worker + (N - 1) * (o + 2 * 4 * P / bandwidth)        (N >= 2)
    t(1) = c_local                                                   (one machine, no network)

c_worker: a worker's compute per step (Burn's flex ops, driven remotely; measured: `one-worker`);
c_local: one machine's step with Kiln's kernels (measured: `local`); o: what a worker's exchange
costs beyond the bytes (measured on loopback: `local+worker` minus `one-worker`, an upper bound,
since it includes loopback's own byte time); P: parameters (f32). Every machine runs the same
per-device batch b, so N machines train N*b examples per step (as PyTorch's DDP). The transfers
to the workers share the trainer's link, hence the (N - 1) factor; a ring all-reduce (NCCL, Horovod)
would move 2 * (N - 1) / N * 4P per machine instead, which Burn's remote backend does not offer.

Usage: distributed_projection.py  (prints the markdown tables of docs/distributed.md)
"""

# Measured on this machine (AMD EPYC, 2 cores, one thread per process; docs/distributed.md):
# seconds per step at batch 16 x 128 tokens for the encoder (configs/bench/encoder_softmax.toml).
ENCODER = dict(name="encoder (3.2 M parameters)", params=3_198_474, c_local=0.4117, c_worker=0.8758,
               overhead=0.8902 - 0.8758)
# A BERT-base-sized model (110 M parameters; 85 M outside the embeddings against the encoder's
# 3.16 M): compute scaled by the non-embedding parameters at the same tokens per step (training
# FLOPs ~ 6 x parameters x tokens), the exchange overhead by the bytes.
SCALE = 85.0e6 / 3.16e6
BERT = dict(name="BERT-base-sized (110 M parameters)", params=110_000_000, c_local=ENCODER["c_local"] * SCALE,
            c_worker=ENCODER["c_worker"] * SCALE, overhead=ENCODER["overhead"] * 110e6 / 3.198e6)
LINKS = [("1 Gbit/s", 1e9 / 8), ("10 Gbit/s", 10e9 / 8), ("100 Gbit/s", 100e9 / 8)]
MACHINES = [1, 2, 4, 8, 16, 32, 64]


def step_seconds(model, n, bandwidth):
    if n == 1:
        return model["c_local"]
    return model["c_worker"] + (n - 1) * (model["overhead"] + 2 * 4 * model["params"] / bandwidth)


def table(model):
    print(f"\n**{model['name']}**, workers at {model['c_worker']:.2f} s of compute per step: step time in s "
          "(speed-up in examples/s over one machine)\n")
    print("| link | " + " | ".join(f"N = {n}" for n in MACHINES) + " | stops helping at |")
    print("|---" * (len(MACHINES) + 2) + "|")
    for link, bandwidth in LINKS:
        cells, best = [], (1, 1.0)
        one = MACHINES[0] / step_seconds(model, 1, bandwidth)
        for n in MACHINES:
            t = step_seconds(model, n, bandwidth)
            speedup = n / t / one
            cells.append(f"{t:.2f} ({speedup:.1f}x)")
        # From two machines on: the first N where doubling the machines adds less than 10 %.
        stop = next((n for n in range(2, 4097) if (2 * n) / step_seconds(model, 2 * n, bandwidth)
                     < 1.1 * n / step_seconds(model, n, bandwidth)), None)
        print(f"| {link} | " + " | ".join(cells) + f" | N = {stop} |")


if __name__ == "__main__":
    for m in (ENCODER, BERT):
        table(m)
    # The same, were the workers as fast as one machine with Kiln's kernels (they run Burn's own
    # flex ops: Kiln's kernels are in-process backend extensions that the remote protocol does not carry).
    for m in (ENCODER, BERT):
        table(dict(m, c_worker=m["c_local"], name=m["name"] + ", workers with Kiln's kernels (hypothetical)"))

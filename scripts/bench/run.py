#!/usr/bin/env python3
"""Kiln and PyTorch side by side on this machine; writes docs/benchmarks.md.

    scripts/bench/run.py [--python PY] [--kiln BIN] [--rounds 3] [--quick] [--out docs/benchmarks.md]
    scripts/bench/run.py --redo softmax,16384,forward ...   # re-measure points of the saved run

PY (default python3) needs torch, and for the attention references `nystrom-attention` and
`performer-pytorch`, and for the embedding benchmark `transformers`:

    PY -m pip install torch nystrom-attention performer-pytorch transformers

BIN defaults to target/release/kiln, built first with `cargo build --release`. The embedding benchmark
runs when KILN_BERT_DIR (scripts/download_minilm.sh) and KILN_DATA_DIR (holding stsb/) are set; the
training steps of the language model and the ViT when KILN_DATA_DIR holds tinyshakespeare/ and mnist/.

Kiln and PyTorch alternate: the training step round by round, the attention layer point by point
(each point a fresh process on each side), so that the machine's drift hits both alike. Ratios are
PyTorch time / Kiln time: above 1 means Kiln is faster. Not run by CI.
"""
import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KINDS = ["softmax", "linear-elu", "linear-exp", "performer", "nystrom"]


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True, cwd=ROOT, **kw).stdout


def machine(py):
    cpu = "?"
    flags = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name") and cpu == "?":
                cpu = line.split(":", 1)[1].strip()
            if line.startswith("flags") and not flags:
                flags = line
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) / 2**20:.0f} GiB"
    torch = sh([py, "-c", "import torch; print(torch.__version__, torch.get_num_threads())"]).split()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "avx512": "avx512f" in flags,
        "memory": mem,
        "os": platform.platform(),
        "rustc": sh(["rustc", "--version"]).strip(),
        "torch": torch[0],
        "torch_threads": torch[1],
    }


def json_lines(text):
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


# The training steps compared: Kiln config, PyTorch twin (command after the interpreter), tokens per
# step, what the config reads from KILN_DATA_DIR (None: generated data), and what the twin is.
STEPS = {
    "train_step": ("configs/bench/encoder_softmax.toml", ["scripts/bench/train_step_torch.py"], 2048, None,
                   "4-layer post-norm encoder, d_model 256, 4 heads, FFN 1024 (GELU), dropout 0.1, batch 16 × 128 "
                   "tokens, AdamW, global-norm clipping"),
    "lm_step": ("configs/lm/softmax.toml", ["scripts/bench/train_step_prenorm_torch.py", "--model", "lm"], 768,
                "tinyshakespeare/input.txt",
                "the character language model of the results (nanoGPT's small CPU setting): 4 pre-norm causal "
                "layers, d_model 128, 4 heads, FFN 512, dropout 0, batch 12 × 64 characters, AdamW, global-norm "
                "clipping; PyTorch's attention is `scaled_dot_product_attention(is_causal=True)`"),
    "vit_step": ("configs/vit/softmax_learned.toml", ["scripts/bench/train_step_prenorm_torch.py", "--model", "vit"],
                 64 * 49, "mnist",
                 "the MNIST vision transformer with learned positions: 49 patches of 4 × 4 pixels, 4 pre-norm "
                 "layers, d_model 64, 4 heads, FFN 128, batch 64 images, AdamW, global-norm clipping"),
}


def train_step(kiln, py, rounds, steps, which="train_step"):
    config, twin, _, needs, _ = STEPS[which]
    if needs and not os.path.exists(os.path.join(os.environ.get("KILN_DATA_DIR", "/nonexistent"), needs)):
        print(f"{config}: skipped, KILN_DATA_DIR has no {needs}", file=sys.stderr)
        return None
    ours, theirs = [], []
    for r in range(rounds):
        with tempfile.NamedTemporaryFile(suffix=".json") as out:
            subprocess.run(
                [kiln, "bench", "train-step", config, "--rounds", "1", "--warmup", "3", "--steps", str(steps),
                 "--json", out.name],
                check=True, cwd=ROOT, capture_output=True,
            )
            ours.append(json_lines(open(out.name).read())[0]["step_ms"])
        theirs.append(json_lines(sh([py, *twin, "--steps", str(steps)]))[0]["step_ms"])
        print(f"{config} round {r + 1}/{rounds}: kiln {ours[-1]:.1f} ms, pytorch {theirs[-1]:.1f} ms", file=sys.stderr)
    return {"kiln": ours, "pytorch": theirs}


def attention_points(kiln, py, points, repeats, max_gib, rounds=1, slow_s=20.0):
    """Each point measured `rounds` times, Kiln and PyTorch alternating, each run a fresh process; a point
    whose first pair of runs took longer than `slow_s` seconds is measured once. A side's time is the
    median over its rounds, its memory the largest peak."""
    rows = []
    for kind, n, mode in points:
        point = f"{kind},{n},{mode}"
        ks, ts = [], []
        for r in range(rounds):
            start = time.monotonic()
            # kiln reports a softmax point over --max-gib as skipped, with the reason, instead of running it.
            k = json_lines(sh([kiln, "bench", "attention", "--point", point, "--repeats", str(repeats),
                               "--max-gib", str(max_gib)]))[0]
            try:
                t = json_lines(sh([py, "scripts/bench/attention_torch.py", "--point", point, "--repeats",
                                   str(repeats)]))[0]
            except subprocess.CalledProcessError as e:
                t = {"ms": None, "peak_mib": None, "note": f"failed: {e.stderr.strip().splitlines()[-1:]}"}
            ks.append(k)
            ts.append(t)
            print(f"{point} round {r + 1}: kiln {k.get('ms')} ms {k.get('peak_mib')} MiB | pytorch {t.get('ms')} ms "
                  f"{t.get('peak_mib')} MiB", file=sys.stderr)
            if k.get("ms") is None or t.get("ms") is None or (r == 0 and time.monotonic() - start > slow_s):
                break
        rows.append({"kind": kind, "n": n, "mode": mode, "kiln": combine(ks), "pytorch": combine(ts),
                     "rounds": [[k.get("ms"), t.get("ms")] for k, t in zip(ks, ts)]})
    return rows


def combine(runs):
    """One side of a point over its rounds: the median time, the largest peak memory."""
    out = dict(runs[0])
    times = [r["ms"] for r in runs if r.get("ms") is not None]
    peaks = [r["peak_mib"] for r in runs if r.get("peak_mib") is not None]
    out["ms"] = statistics.median(times) if times else None
    out["peak_mib"] = max(peaks) if peaks else None
    return out


def all_points(ns):
    return [(kind, n, mode) for mode in ["forward", "backward"] for n in ns for kind in KINDS]


def fmt(x, digits=1):
    return "—" if x is None else f"{x:,.{digits}f}"


def ratio(ours, theirs):
    return "—" if ours is None or theirs is None else f"{theirs / ours:.2f}"


def exponent(rows, side, kind, mode, key, lo=4096, hi=16384):
    import math

    a = next((r[side].get(key) for r in rows if r["kind"] == kind and r["mode"] == mode and r["n"] == lo), None)
    b = next((r[side].get(key) for r in rows if r["kind"] == kind and r["mode"] == mode and r["n"] == hi), None)
    if not a or not b:
        return None
    return math.log(b / a) / math.log(hi / lo)


def overtakes(rows, side, kind, mode):
    for r in sorted((r for r in rows if r["kind"] == kind and r["mode"] == mode), key=lambda r: r["n"]):
        s = next(x for x in rows if x["kind"] == "softmax" and x["mode"] == mode and x["n"] == r["n"])
        if r[side].get("ms") is not None and (s[side].get("ms") is None or r[side]["ms"] < s[side]["ms"]):
            return r["n"]
    return None


def embed(kiln, py):
    bert, data = os.environ.get("KILN_BERT_DIR"), os.environ.get("KILN_DATA_DIR")
    if not bert or not data:
        return None
    ours = sh([kiln, "bench", "embed", "--model", bert, "--repeats", "3"])
    theirs = sh([py, "scripts/bench/embed_transformers.py", bert, os.path.join(data, "stsb"), "--repeats", "3"])
    return ours.strip(), theirs.strip()


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", default="python3")
    p.add_argument("--kiln", default=None)
    p.add_argument("--rounds", type=int, default=5, help="training-step rounds")
    p.add_argument("--point-rounds", type=int, default=3,
                   help="rounds per attention point (points whose first round takes over --slow-s run once)")
    p.add_argument("--slow-s", type=float, default=20.0,
                   help="seconds a point's first round (Kiln and PyTorch) may take for the point to be repeated")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-gib", type=float, default=10.0)
    p.add_argument("--quick", action="store_true", help="lengths 256-4096 only, one round")
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks.md"),
                   help="the report; the raw figures go beside it as .json")
    p.add_argument("--redo", action="append", default=[], metavar="KIND,N,MODE",
                   help="re-measure this attention point of the saved run (repeatable) and render again")
    p.add_argument("--redo-step", action="store_true",
                   help="re-measure the training step (Kiln and PyTorch alternating) of the saved run and render again")
    a = p.parse_args()
    kiln = a.kiln
    if kiln is None:
        subprocess.run(["cargo", "build", "--release", "--quiet"], check=True, cwd=ROOT)
        kiln = os.path.join(ROOT, "target", "release", "kiln")
    ns = [256, 1024, 4096] if a.quick else [256, 512, 1024, 2048, 4096, 8192, 16384]
    rounds = 1 if a.quick else a.rounds
    point_rounds = 1 if a.quick else a.point_rounds
    raw_path = os.path.splitext(a.out)[0] + ".json"
    if a.redo or a.redo_step:
        # Re-measure some attention points, or the training step, of the saved run and render again.
        data = json.load(open(raw_path))
        if a.redo_step:
            for which in STEPS:
                data[which] = train_step(kiln, a.python, rounds, a.steps, which)
            data["train_step_redone"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
        redo = [(k, int(n), m) for k, n, m in (r.split(",") for r in a.redo)]
        fresh = attention_points(kiln, a.python, redo, a.repeats, a.max_gib, point_rounds, a.slow_s)
        for f in fresh:
            f["redone"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")
            data["rows"] = [r for r in data["rows"] if (r["kind"], r["n"], r["mode"]) != (f["kind"], f["n"], f["mode"])]
            data["rows"].append(f)
        order = {p: i for i, p in enumerate(all_points(sorted({r["n"] for r in data["rows"]})))}
        data["rows"].sort(key=lambda r: order.get((r["kind"], r["n"], r["mode"]), 1 << 30))
    else:
        started = datetime.datetime.now(datetime.timezone.utc)
        data = {"started": started.strftime("%Y-%m-%d %H:%M"), "quick": a.quick, "steps": a.steps,
                "repeats": a.repeats, "point_rounds": point_rounds, "slow_s": a.slow_s,
                "machine": machine(a.python)}
        print(f"machine: {data['machine']}", file=sys.stderr)
        for which in STEPS:
            data[which] = train_step(kiln, a.python, rounds, a.steps, which)
        data["rows"] = attention_points(kiln, a.python, all_points(ns), a.repeats, a.max_gib, point_rounds, a.slow_s)
        data["errors"] = sh([kiln, "bench", "attention", "--errors-only"]).split("relative error", 1)[-1]
        data["embed"] = embed(kiln, a.python)
        data["minutes"] = (datetime.datetime.now(datetime.timezone.utc) - started).total_seconds() / 60
        data["kiln"] = os.path.relpath(kiln, ROOT) if kiln.startswith(ROOT) else kiln
        data["commit"] = sh(["git", "describe", "--always", "--dirty"]).strip()
    with open(raw_path, "w") as f:
        json.dump(data, f, indent=1)
    render(data, a.out)


def render(data, out):
    m, rows, errors, emb = data["machine"], data["rows"], data["errors"], data["embed"]
    quick = data["quick"]
    L = []
    L.append("# Benchmarks: Kiln and PyTorch side by side")
    L.append("")
    redone = sorted({r["redone"] for r in rows if r.get("redone")})
    L.append(f"Generated by `scripts/bench/run.py{' --quick' if quick else ''}` on {data['started']} UTC "
             f"({data['minutes']:.0f} min)" + (f"; points marked * re-measured with `--redo` on {', '.join(redone)}"
                                                 if redone else "") + ". Kiln and PyTorch alternate (training step round by round, attention point by "
             "point, each point a fresh process), so the figures of one row were taken minutes apart on the same "
             "machine. **Ratio = PyTorch time / Kiln time: above 1.00 Kiln is faster.**")
    L.append("")
    L.append("## Machine")
    L.append("")
    L.append(f"- CPU: {m['cpu']}, {m['cores']} cores, AVX-512 {'yes' if m['avx512'] else 'no'}; memory {m['memory']}")
    commit = f", the repository at `{data['commit']}`" if data.get("commit") else ""
    L.append(f"- {m['os']}; {m['rustc']}; Kiln binary `{data['kiln']}`{commit}")
    L.append(f"- PyTorch {m['torch']}, {m['torch_threads']} threads")
    L.append("")
    L.append("## Training step")
    L.append("")
    for which, (config, twin, tokens, needs, what) in STEPS.items():
        step = data.get(which)
        if step is None:
            L.append(f"`{config}`: not measured in this run (set KILN_DATA_DIR to a folder with {needs}).")
            L.append("")
            continue
        ours, theirs = step["kiln"], step["pytorch"]
        L.append(f"`{config}` (`kiln bench train-step`) against `{' '.join(twin)}`: {what}; a step is batch, forward, "
                 f"backward, clipping, update. Median of {data['steps']} steps after 3 warm-up steps, per round; "
                 f"{len(ours)} rounds alternating."
                 + (f" Re-measured with `--redo-step` on {data['train_step_redone']} UTC." if data.get("train_step_redone") else ""))
        L.append("")
        L.append("| | Kiln step (ms) | PyTorch step (ms) | Kiln tokens/s | PyTorch tokens/s | ratio |")
        L.append("|---|---|---|---|---|---|")
        for i, (k, t) in enumerate(zip(ours, theirs)):
            L.append(f"| round {i + 1} | {k:.1f} | {t:.1f} | {tokens / k * 1e3:,.0f} | {tokens / t * 1e3:,.0f} | {t / k:.2f} |")
        k, t = statistics.median(ours), statistics.median(theirs)
        L.append(f"| **median** | **{k:.1f}** | **{t:.1f}** | **{tokens / k * 1e3:,.0f}** | **{tokens / t * 1e3:,.0f}** | **{t / k:.2f}** |")
        L.append("")
    L.append("## Attention layers")
    L.append("")
    L.append("One multi-head attention layer (query, key, value and output projections around the kind), batch 1, "
             "8 heads × 64 dims, `x ~ N(0, 1)`; `kiln bench attention --point KIND,N,MODE` against "
             "`scripts/bench/attention_torch.py`: softmax = `scaled_dot_product_attention`; linear = plain PyTorch "
             "(no reference package); performer = `performer_pytorch.SelfAttention` (266 features); nystrom = "
             "`nystrom_attention.NystromAttention` (64 landmarks, 6 pseudo-inverse iterations, 33-tap residual "
             f"convolution). Time: median of {data['repeats']} runs after a warm-up in one process"
             + (f"; each point is measured in {data['point_rounds']} rounds, Kiln and PyTorch alternating, each run a "
                f"fresh process (once where the first round took over {data['slow_s']:.0f} s), and the table gives "
                "the median over rounds and, last, each round's ratio" if data.get("point_rounds", 1) > 1 else "")
             + ". Memory: peak resident growth (MiB) over the resident set once layer and input exist (largest over "
             "rounds). Forward runs without autograd on both sides.")
    for mode, title in [("forward", "Forward"), ("backward", "Forward + backward")]:
        L.append("")
        L.append(f"### {title}")
        L.append("")
        L.append("| kind | n | Kiln ms | PyTorch ms | ratio | Kiln MiB | PyTorch MiB | ratio per round |")
        L.append("|---|---|---|---|---|---|---|---|")
        for r in rows:
            if r["mode"] != mode:
                continue
            k, t = r["kiln"], r["pytorch"]
            note = k.get("note") or t.get("note") or ""
            star = "*" if r.get("redone") else ""
            L.append(f"| {r['kind']}{star} | {r['n']:,} | {fmt(k.get('ms'))} | {fmt(t.get('ms'))} | "
                     f"{ratio(k.get('ms'), t.get('ms'))} | {fmt(k.get('peak_mib'), 0)} | {fmt(t.get('peak_mib'), 0)} | "
                     f"{', '.join(ratio(a, b) for a, b in r.get('rounds', []))} |"
                     + (f" {note}" if note else ""))
    if not quick:
        L.append("")
        L.append("### Growth in n and where each kind overtakes softmax")
        L.append("")
        L.append("Exponent p of time ∝ nᵖ (memory in brackets) fitted between n = 4,096 and 16,384; the first n "
                 "measured where the kind is faster than exact softmax on the same side.")
        L.append("")
        L.append("| kind | mode | Kiln p (memory) | PyTorch p (memory) | Kiln faster than softmax from | PyTorch from |")
        L.append("|---|---|---|---|---|---|")
        for kind in KINDS:
            for mode in ["forward", "backward"]:
                def pe(side):
                    t, mm = exponent(rows, side, kind, mode, "ms"), exponent(rows, side, kind, mode, "peak_mib")
                    return f"{fmt(t, 2)} ({fmt(mm, 2)})"
                L.append(f"| {kind} | {mode} | {pe('kiln')} | {pe('pytorch')} | "
                         f"{fmt(overtakes(rows, 'kiln', kind, mode), 0)} | {fmt(overtakes(rows, 'pytorch', kind, mode), 0)} |")
    L.append("")
    L.append("### Relative error against exact softmax (Kiln, `kiln bench attention --errors-only`)")
    L.append("")
    L.append("‖A − softmax‖ / ‖softmax‖ of the attention output on Gaussian q, k, v (std 1), Nyström without its "
             "convolution residual. Linear attention is a different attention, not an approximation of softmax.")
    L.append(errors.split(":", 1)[-1].rstrip())
    L.append("")
    L.append("## BERT sentence embedding")
    L.append("")
    if emb is None:
        L.append("Not measured in this run: set KILN_BERT_DIR and KILN_DATA_DIR.")
    else:
        L.append("`kiln bench embed` and `scripts/bench/embed_transformers.py` (STS-B test sentences, batch 64, "
                 "length-sorted, mean pooling):")
        L.append("")
        L.append("```")
        L.append(emb[0])
        L.append(emb[1])
        L.append("```")
    L.append("")
    # The hand-written analysis below the marker survives regeneration.
    marker = "<!-- notes: written by hand, kept by scripts/bench/run.py -->"
    kept = marker + "\n"
    if os.path.exists(out):
        old = open(out).read()
        if marker in old:
            kept = marker + old.split(marker, 1)[1]
    L.append(kept)
    with open(out, "w") as f:
        f.write("\n".join(L))
    print(f"wrote {out}", file=sys.stderr)


if __name__ == "__main__":
    main()

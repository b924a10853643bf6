#!/usr/bin/env python3
"""Fixture for kiln-ner/tests/conlleval_reference.rs: a column file of gold and predicted BIO tags
with the irregular cases conlleval repairs (an I- with no B- before it, a type change inside a chunk,
chunks at sentence ends, -DOCSTART- lines), and the chunk counts and scores that `conlleval`
(PyPI `conlleval`, a line-for-line Python port of the CoNLL shared task's conlleval.pl) reports for it.

    python3 -m venv venv && venv/bin/pip install conlleval==0.2
    venv/bin/python scripts/reference/conlleval_fixture.py
"""
import json
import random
from importlib.metadata import version
from pathlib import Path

import conlleval

TYPES = ["PER", "LOC", "ORG"]


def tags(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.45:
            out.append("O")
        elif r < 0.75:
            out.append("B-" + rng.choice(TYPES))
        else:
            out.append("I-" + rng.choice(TYPES))  # continues, changes type, or starts with no B-
    return out


def perturb(rng: random.Random, gold: list[str]) -> list[str]:
    out = list(gold)
    for i in range(len(out)):
        if rng.random() < 0.3:
            out[i] = rng.choice(["O", "B-" + rng.choice(TYPES), "I-" + rng.choice(TYPES)])
    return out


def main() -> None:
    rng = random.Random(34)
    lines = ["-DOCSTART- -X- O O", ""]
    for s in range(40):
        gold = tags(rng, rng.randint(1, 12))
        pred = perturb(rng, gold)
        lines += [f"w{s}_{i} X {g} {p}" for i, (g, p) in enumerate(zip(gold, pred))]
        lines.append("")
        if s == 20:
            lines += ["-DOCSTART- -X- O O", ""]
    text = "\n".join(lines) + "\n"
    result = conlleval.evaluate(text.splitlines())
    chunks = lambda r: {k: r["stats"][k] for k in ("correct", "pred", "gold")} | r["evals"]
    expected = {
        "generator": f"conlleval {version('conlleval')} (scripts/reference/conlleval_fixture.py)",
        "overall": chunks(result["overall"]["chunks"]),
        "per_type": {t: chunks(r) for t, r in sorted(result["slots"]["chunks"].items())},
    }
    out = Path(__file__).resolve().parents[2] / "crates" / "kiln-ner" / "tests" / "fixtures" / "conlleval"
    out.mkdir(parents=True, exist_ok=True)
    (out / "input.txt").write_text(text)
    (out / "expected.json").write_text(json.dumps(expected, indent=1) + "\n")
    print(json.dumps(expected["overall"]))


if __name__ == "__main__":
    main()

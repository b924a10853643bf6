#!/usr/bin/env python3
"""Write samples/ner_english/{train,dev}.txt: a small English NER corpus in CoNLL-2003's column
layout (word, part-of-speech placeholder, tag; BIO; a -DOCSTART- line; a blank line between
sentences), made from templates and invented names, for the word-level NER tests and the README's
example. Deterministic: run it again and the files are the same.

    python3 scripts/make_english_ner_sample.py
"""
import random
from pathlib import Path

PER = ["Anna Berg", "Tomas Lind", "Maria Costa", "John Okafor", "Lena Vogel", "Ravi Menon", "Ines Moreau", "Karl Huber"]
LOC = ["Paris", "Lisbon", "New York", "Nairobi", "Oslo", "Buenos Aires", "Kyoto", "Dublin"]
ORG = ["Nordbank", "Vesta Airlines", "Red Cross", "United Nations", "Acme Corp", "Helix Labs"]

TEMPLATES = [
    "{PER} flew to {LOC} on Monday .",
    "{ORG} opened an office in {LOC} .",
    "{PER} , a spokesman for {ORG} , said prices would rise .",
    "Talks between {ORG} and {ORG2} ended in {LOC} .",
    "{PER} met {PER2} in {LOC} last week .",
    "Shares of {ORG} fell 3.5 % in {LOC} trading .",
    "The weather in {LOC} was mild , {PER} said .",
    "{PER} 's team beat {ORG} ( {LOC} ) on Sunday .",
    "In {LOC} , {ORG} hired {PER} as chief executive .",
    "\" We are pleased , \" {PER} told reporters in {LOC} .",
]


def sentence(rng: random.Random) -> list[tuple[str, str]]:
    template = rng.choice(TEMPLATES)
    per, per2 = rng.sample(PER, 2)
    org, org2 = rng.sample(ORG, 2)
    fills = {"{PER}": (per, "PER"), "{PER2}": (per2, "PER"), "{ORG}": (org, "ORG"), "{ORG2}": (org2, "ORG"),
             "{LOC}": (rng.choice(LOC), "LOC")}
    out = []
    for word in template.split():
        if word in fills:
            name, kind = fills[word]
            out += [(w, ("B-" if i == 0 else "I-") + kind) for i, w in enumerate(name.split())]
        else:
            out.append((word, "O"))
    return out


def write(path: Path, n: int, rng: random.Random) -> None:
    lines = ["-DOCSTART- -X- O", ""]
    for _ in range(n):
        for word, tag in sentence(rng):
            pos = "NNP" if tag != "O" else ("." if not word[0].isalnum() else "X")
            lines.append(f"{word} {pos} {tag}")
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> None:
    out = Path(__file__).resolve().parent.parent / "samples" / "ner_english"
    out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2026)
    write(out / "train.txt", 48, rng)
    write(out / "dev.txt", 16, rng)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Summarise finished kiln runs as Markdown table rows for docs/results.md.

Usage: scripts/results_table.py KILN_BINARY RUN_DIR [RUN_DIR ...]

For each run: the config it came from, the best validation metric and its step, the test metric of
the best checkpoint (from `kiln eval`), the steps done and the training wall time (summary.json).
"""
import json
import re
import subprocess
import sys
from pathlib import Path


def main() -> None:
    kiln, runs = sys.argv[1], sys.argv[2:]
    print("| config | best valid | test (best checkpoint) | steps | wall time |")
    print("|---|---|---|---|---|")
    for run in map(Path, runs):
        summary = json.loads((run / "summary.json").read_text())
        source = re.search(r"# Resolved from (\S+)", (run / "config.toml").read_text())
        best = summary["best"]
        out = subprocess.run([kiln, "eval", str(run)], capture_output=True, text=True, check=True).stdout
        test = next(line for line in out.splitlines() if line.strip().startswith("test:"))
        test_value = re.search(rf"{best['metric']} ([0-9.]+)", test).group(1)
        minutes, seconds = divmod(round(summary["train_seconds"]), 60)
        print(
            f"| `{source.group(1) if source else run}` | {best['metric']} {best['value']:.4f} (step {best['step']}) "
            f"| {best['metric']} {test_value} | {summary['step']} | {minutes}m{seconds:02d}s |"
        )


if __name__ == "__main__":
    main()

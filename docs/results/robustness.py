"""Table of `python -m sim compare` robustness runs: final accuracy as a fraction of the clean run's, per seed.

Usage: .venv/bin/python docs/results/robustness.py OUT [OUT ...]  (compare output folders; the first holds `clean`).
Prints one Markdown row per run label: final accuracy (mean ± sd over seeds), the ratio to the clean run of the
same seed (mean ± sd), and the replies the server rejected and the claims it capped, summed over seeds and rounds.
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def _runs(folder: Path) -> dict[tuple[str, int], dict]:
    """Each run's record in `runs.json`, with its rejected and capped counts from its own metrics.json."""
    found = {}
    for run in json.loads((folder / "runs.json").read_text())["runs"]:
        rounds = json.loads((folder / "runs" / f"{run['strategy']}-{run['seed']}" / "metrics.json").read_text())[
            "rounds"
        ]
        run["rejected"] = sum(r.get("updates_rejected", 0) for r in rounds[1:])
        run["capped"] = sum(len(r.get("claims_capped", [])) for r in rounds[1:])
        found[(run["strategy"], run["seed"])] = run
    return found


def main(folders: list[Path]) -> None:
    runs: dict[tuple[str, int], dict] = {}
    for folder in folders:
        runs.update(_runs(folder))
    clean = {seed: run["final_accuracy"] for (label, seed), run in runs.items() if label == "clean"}
    labels: dict[str, list[dict]] = defaultdict(list)
    for (label, _), run in sorted(runs.items(), key=lambda item: item[0][1]):
        labels[label].append(run)
    print("| run | seeds | final accuracy | / clean (same seed) | replies rejected | claims capped |")
    print("|---|---|---|---|---|---|")
    for label, group in labels.items():
        if label == "centralized":
            continue
        accuracy = [run["final_accuracy"] for run in group]
        ratio = [run["final_accuracy"] / clean[run["seed"]] for run in group]
        print(
            f"| {label} | {len(group)} | {statistics.mean(accuracy):.4f} ± {statistics.stdev(accuracy):.4f} | "
            f"{statistics.mean(ratio):.3f} ± {statistics.stdev(ratio):.3f} | "
            f"{sum(run['rejected'] for run in group)} | {sum(run['capped'] for run in group)} |"
        )


if __name__ == "__main__":
    main([Path(argument) for argument in sys.argv[1:]])

#!/usr/bin/env bash
# Honest non-IID runs with the default round-relative screens on and off (issue 25, item 1):
# 10 nodes, Dirichlet(0.1), 2NN, 20 rounds, seeds 1-3. Prints, per run, the honest replies the
# screens rejected or capped and the final central accuracy, then writes docs/results/screening-honest.json.
# Usage (from the project root, with .venv installed): docs/results/screening-honest.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=.venv/bin/python
COMMON="model=2nn partitioner=dirichlet dirichlet-alpha=0.1 num-server-rounds=20 fraction-evaluate=0.0"
for seed in ${SEEDS:-1 2 3}; do
  for screens in on off; do
    extra=""
    [ "$screens" = off ] && extra="outlier-norm-ratio=0.0 max-claim-ratio=0.0"
    $PY -m sim run --nodes 10 -c "$COMMON seed=$seed run-name=screening-$screens-$seed $extra" > /dev/null
  done
done
$PY - <<'PY'
import json, statistics
from pathlib import Path

rows = []
for path in sorted(Path("outputs").glob("screening-*/metrics.json")):
    rounds = json.loads(path.read_text())["rounds"][1:]
    rows.append({
        "run": path.parent.name,
        "replies": sum(r["updates_aggregated"] + r["updates_rejected"] for r in rounds),
        "rejected": sum(r["updates_rejected"] for r in rounds),
        "capped": sum(len(r.get("claims_capped", [])) for r in rounds),
        "final_accuracy": rounds[-1]["central_accuracy"],
    })
for row in rows:
    print(json.dumps(row))
for screens in ("on", "off"):
    acc = [r["final_accuracy"] for r in rows if r["run"].startswith(f"screening-{screens}-")]
    print(f"screens {screens}: final accuracy {statistics.mean(acc):.4f} ± {statistics.stdev(acc):.4f} over {len(acc)} seeds")
Path("docs/results/screening-honest.json").write_text(json.dumps(rows, indent=1) + "\n")
PY

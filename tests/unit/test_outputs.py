"""Run outputs: metrics.json exactly as `json.dumps` writes it, with each round serialized once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fedapp.outputs import METRICS_FILE, RoundTexts, RunOutputs


def _record(server_round: int) -> dict[str, Any]:
    return {
        "round": server_round,
        "central_accuracy": 0.5 + server_round / 100,
        "failed_nodes": [],
        "rejected_updates": [{"node": "partition-00003", "reason": "nan", "detail": 'quote " and\\nnewline'}],
        "clients": [{"node": f"partition-{i:05d}", "bytes_down": 10, "replied": True} for i in range(3)],
        "empty": {},
        "ratio": None,
    }


def test_the_document_and_the_checkpoint_list_are_json_dumps_character_for_character() -> None:
    header = {"run_id": 7, "config": {"seed": 0, "model": "2nn"}, "partition_counts": [4]}
    texts = RoundTexts()
    assert texts.document(header, []) == json.dumps({"run": header, "rounds": []}, indent=1)
    rounds = [_record(i) for i in range(4)]
    assert texts.document(header, rounds) == json.dumps({"run": header, "rounds": rounds}, indent=1)
    assert texts.compact(rounds) == json.dumps(rounds)


def test_an_amended_round_is_written_again_and_the_others_are_reused(tmp_path: Path) -> None:
    outputs = RunOutputs(tmp_path, {"run_id": 1})
    for server_round in range(3):
        outputs.add_round(_record(server_round))
    assert outputs.amend_round(1, {"federated_accuracy": 0.75})
    assert not outputs.amend_round(9, {"federated_accuracy": 0.1})
    written = json.loads((tmp_path / METRICS_FILE).read_text())
    assert written["rounds"][1]["federated_accuracy"] == 0.75 and written["rounds"] == outputs.rounds
    assert (tmp_path / METRICS_FILE).read_text() == json.dumps(
        {"run": {"run_id": 1}, "rounds": outputs.rounds}, indent=1
    ) + "\n"

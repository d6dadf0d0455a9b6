"""Run outputs: metrics.json exactly as `json.dumps` writes it, with each round serialized once, the nodes'
training samples in its header, and traffic in units that show it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fedapp import federation as federation_module
from fedapp import nodes as nodes_module
from fedapp.config import RunConfig
from fedapp.data import DataSpec, load_node_data
from fedapp.federation import Federation, readable_bytes
from fedapp.nodes import NodeDirectory
from fedapp.outputs import METRICS_FILE, RoundTexts, RunOutputs
from fedapp.strategy_factory import build_strategy
from tests.helpers import FakeGrid, answer, initial, run_config


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


@pytest.mark.usefixtures("message_identity")
def test_partition_counts_are_each_nodes_training_samples(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A one-round run over 3 real ClientApp nodes: `partition_counts` maps node keys to training samples."""
    raw = run_config(
        num_server_rounds=1, local_epochs=1, fraction_train=1.0, fraction_evaluate=0.0, output_dir=str(tmp_path)
    )
    config = RunConfig.from_mapping(raw)
    grid = FakeGrid([1, 2, 3])
    deliver = lambda grid, messages, timeout: answer(list(messages), raw, monkeypatch, 3)  # noqa: E731
    monkeypatch.setattr(nodes_module, "send_and_receive", deliver)
    monkeypatch.setattr(federation_module, "plain_exchange", deliver)
    outputs = RunOutputs.create(config, run_id=1)
    Federation(grid, NodeDirectory(grid, 1.0), build_strategy(config), config, None, outputs).run(initial())
    header = json.loads((outputs.folder / METRICS_FILE).read_text())["run"]
    spec = DataSpec.from_config(config)
    expected = {f"partition-{i:05d}": len(load_node_data(spec, i, 3).train) for i in range(3)}
    assert header["partition_counts"] == expected and all(count > 100 for count in expected.values())
    assert header["num_partitions"] == [3], "how the nodes share the data, checked on resume"


def test_traffic_below_a_megabyte_is_shown_in_kilobytes() -> None:
    assert readable_bytes(0) == "0.0 KB"
    assert readable_bytes(31_400) == "31.4 KB"
    assert readable_bytes(999_949) == "999.9 KB"
    assert readable_bytes(66_500_000) == "66.5 MB"

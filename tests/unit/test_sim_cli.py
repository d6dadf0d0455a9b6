"""`python -m sim run` refuses bad input before starting anything."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sim.__main__ as sim_main
from fedapp.config import ConfigError
from fedapp.registry import STRATEGIES
from sim.run import RunRequest
from sim.superlink import LocalSuperLink
from tests.helpers import APP_DIR, free_port
from tests.hub_schemas import write_cifar10_like


def _sim(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sim", *arguments],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env=os.environ,
        check=False,
    )


def test_cli_rejects_bad_config_before_starting_anything(tmp_path: Path) -> None:
    result = _sim("run", "-c", "strategy=nope")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: run-config key 'strategy' = 'nope' is not allowed; allowed: {', '.join(_strategy_names())}"
    ]
    assert result.stdout == ""


def test_more_nodes_than_the_embedded_mnist_has_samples_are_refused() -> None:
    result = _sim("run", "--nodes", "4001")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("error: --nodes = 4001 exceeds the 4000 training samples of dataset 'mnist'")


def test_bench_rejects_unknown_sections() -> None:
    result = _sim("bench", "--sections", "cohorts,warp")
    assert result.returncode == 2
    assert "--sections warp is not allowed; allowed: cohorts, overhead, scale, report, gpu" in result.stderr


def _strategy_names() -> list[str]:
    return list(STRATEGIES)


@pytest.mark.parametrize(
    ("overrides", "nodes", "expected"),
    [
        ({"model": "cnn"}, 2, "model 'cnn' (the FedAvg paper's MNIST CNN) needs 1x28x28 inputs"),
        ({"model": "usermodels.nope:build"}, 2, "model 'usermodels.nope:build' cannot be imported"),
        ({"model": "2nn", "label-column": "fine_label"}, 2, "label-column 'fine_label' is not a column"),
        ({"model": "2nn", "partitioner": "natural", "partition-by": "label"}, 11, "--nodes = 11 exceeds the 10"),
    ],
)
def test_bad_data_or_models_are_refused_before_anything_starts(
    tmp_path: Path, overrides: dict[str, str], nodes: int, expected: str
) -> None:
    folder = write_cifar10_like(tmp_path / "cifar10", num_train=40, num_test=4)
    extra = {"dataset": str(folder), "output-dir": str(tmp_path / "out"), **overrides}
    with pytest.raises(ValueError, match=re.escape(expected)) as caught:
        RunRequest.build(APP_DIR, [], nodes=nodes, extra=extra)
    assert "\n" not in str(caught.value) and "allowed" in str(caught.value)
    assert not (tmp_path / "out").exists(), "nothing started"


def test_the_cli_exits_2_with_the_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In process (`python -m sim` exits with `main`'s code; the test above runs the real process)."""
    folder = write_cifar10_like(tmp_path / "cifar10", num_train=12, num_test=4)
    capsys.readouterr()
    assert sim_main.main(["run", "-c", f"dataset={folder} model=cnn"]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: model 'cnn' (the FedAvg paper's MNIST CNN) needs 1x28x28")
    assert captured.out == ""


def test_an_online_preset_offline_fails_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sim", "compare", "--preset", "cifar10", "--out", str(tmp_path / "c")],
        cwd=APP_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "FEDAPP_CACHE_DIR": str(tmp_path / "cache")},
        check=False,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: dataset 'uoft-cs/cifar10' is on the Hugging Face hub and could not be loaded")
    assert "this machine may be offline; allowed offline: mnist, diabetes, synthetic" in lines[0]
    assert not (tmp_path / "c").exists()


def test_an_output_dir_that_cannot_be_created_fails_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`/proc/x` passes every type check but no folder can be made there: one line, exit 2, no SuperLink."""
    home = tmp_path / "flwr-home"
    monkeypatch.setenv("FLWR_HOME", str(home))
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free_port()))
    try:
        code = sim_main.main(["run", "-c", "output-dir=/proc/x"])
    finally:  # without the check, a SuperLink was started and the run submitted: stop it
        LocalSuperLink.default().stop()
    captured = capsys.readouterr()
    assert code == 2, captured.out[-2000:] + captured.err[-2000:]
    assert captured.err.strip().splitlines() == [
        "error: run-config key 'output-dir' = '/proc/x' cannot be created or written (No such file or directory); "
        "allowed: a folder this user can create and write"
    ]
    assert captured.out == ""
    assert not home.exists()


def test_a_factory_that_imports_only_through_this_shells_path_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Importable here (PYTHONPATH, the shell's folder) but not where the apps run: one line, before submitting."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "fedapp_probe_models.py").write_text((APP_DIR / "usermodels" / "example.py").read_text())
    monkeypatch.setenv("PYTHONPATH", str(elsewhere))
    monkeypatch.syspath_prepend(str(elsewhere))
    extra = {"model": "fedapp_probe_models:linear", "output-dir": str(tmp_path / "out")}
    with pytest.raises(ConfigError) as caught:
        RunRequest.build(APP_DIR, [], nodes=2, extra=extra)
    message = str(caught.value)
    assert message.startswith(
        "run-config key 'model' = 'fedapp_probe_models:linear': module 'fedapp_probe_models' imports in this shell "
        "but not where the ServerApp and ClientApps run"
    )
    assert "ModuleNotFoundError: No module named 'fedapp_probe_models'" in message and "usermodels/" in message
    assert "\n" not in message and not (tmp_path / "out").exists()
    carried = {"model": "usermodels.example:linear", "output-dir": str(tmp_path / "out")}
    assert RunRequest.build(APP_DIR, [], nodes=2, extra=carried).config.model == "usermodels.example:linear"

"""Bad input around the run config: the app's pyproject, non-finite numbers, and keys given twice in `-c`."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

import deploy.__main__ as deploy_main
import sim.__main__ as sim_main
from fedapp.config import ConfigError, RunConfig
from sim.compare import build_request
from sim.overrides import app_defaults, parse_overrides
from tests.helpers import APP_DIR

DEFAULTS = app_defaults(APP_DIR)
FLOAT_KEYS = [field.name.replace("_", "-") for field in dataclasses.fields(RunConfig) if field.type == "float"]


@pytest.fixture
def nothing_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail the test, rather than start a SuperLink or train, should a command accept its input."""

    def refuse(*_: object, **__: object) -> None:
        pytest.fail("the command accepted its input and started work")

    for target in ("sim.run.ensure_superlink", "sim.compare.ensure_superlink", "sim.centralized.train_centralized"):
        monkeypatch.setattr(target, refuse)


def _one_error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and captured.out == "", captured
    return lines[0]


# --- the app's pyproject.toml --------------------------------------------------------


def test_a_pyproject_without_the_config_table_is_named_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[tool.flwr.app]\npublisher = "me"\n')
    with pytest.raises(ConfigError, match=rf"^{pyproject} has no \[tool.flwr.app.config\] table; allowed: "):
        app_defaults(tmp_path)
    capsys.readouterr()
    assert sim_main.main(["run", "--app", str(tmp_path)]) == 2
    assert _one_error_line(capsys).startswith(f"error: {pyproject} has no [tool.flwr.app.config] table")


def test_a_pyproject_that_is_not_toml_is_named(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[tool.flwr.app.config]\nseed = \n")
    with pytest.raises(ConfigError, match=rf"^{pyproject} is not valid TOML \(.*line 2.*\); allowed: a TOML file$"):
        app_defaults(tmp_path)
    with pytest.raises(ConfigError, match=rf"^cannot read the app's {tmp_path / 'nowhere'}/pyproject.toml \("):
        app_defaults(tmp_path / "nowhere")


# --- non-finite floats ------------------------------------------------------------------


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_no_float_key_takes_nan_or_infinity(key: str, value: float) -> None:
    with pytest.raises(ConfigError, match=rf"^run-config key '{key}' = -?{value} is not allowed; allowed: a finite"):
        RunConfig.from_mapping({**DEFAULTS, key: value})


def test_an_infinite_learning_rate_from_the_command_line_exits_2(
    capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    assert parse_overrides(["learning-rate=inf"]) == {"learning-rate": float("inf")}
    capsys.readouterr()
    assert sim_main.main(["run", "-c", "learning-rate=inf"]) == 2
    assert _one_error_line(capsys) == (
        "error: run-config key 'learning-rate' = inf is not allowed; allowed: a finite number (not nan or inf)"
    )


# --- keys given twice ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "texts", [["num-server-rounds=3 num-server-rounds=4"], ["num-server-rounds=3", "seed=1 num-server-rounds=4"]]
)
def test_a_key_given_twice_is_refused_in_one_string_or_across_flags(texts: list[str]) -> None:
    with pytest.raises(
        ConfigError,
        match=r"^run-config key 'num-server-rounds' is given twice \('num-server-rounds=3' and 'num-server-rounds=4'\)",
    ):
        parse_overrides(texts)


def test_every_cli_refuses_a_key_given_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], nothing_starts: None
) -> None:
    twice = ["-c", "seed=1", "-c", "seed=2"]
    commands = {
        "sim run": lambda: sim_main.main(["run", *twice]),
        "sim compare": lambda: sim_main.main(
            ["compare", "--strategies", "fedavg", "--out", str(tmp_path / "c"), *twice]
        ),
        "sim centralized": lambda: sim_main.main(["centralized", "--out", str(tmp_path / "z"), *twice]),
        "deploy node-data": lambda: deploy_main.main(
            ["node-data", "--nodes", "2", "--out", str(tmp_path / "n"), *twice]
        ),
    }
    capsys.readouterr()
    for name, command in commands.items():
        assert command() == 2, name
        assert _one_error_line(capsys).startswith("error: run-config key 'seed' is given twice"), name
    assert list(tmp_path.iterdir()) == [], "nothing started"


def test_a_compare_preset_setting_may_still_be_overridden_once(tmp_path: Path) -> None:
    options = {
        "strategies": None, "settings": [], "rounds": 2, "nodes": 4, "seeds": "0", "target": None,
        "centralized_epochs": None, "world_size": 2, "resources": "cpu", "out": tmp_path, "command": "test",
    }  # fmt: skip
    request = build_request(preset="distillation", override_texts=["dirichlet-alpha=0.5"], **options)
    assert request.common["dirichlet-alpha"] == 0.5 and request.common["model"] == "2nn"

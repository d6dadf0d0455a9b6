"""Layers point one way: strategies -> fedapp -> sim -> deploy, and a ClientApp loads no server code.

`strategies/` depends on Flower, NumPy, PyTorch and dp-accounting only, so a strategy
can be read, tested and reused without the app; `fedapp/` (the Flower app, the FAB)
never imports the simulation or deployment tooling; `sim/` never imports `deploy/`.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import APP_DIR

FORBIDDEN = {
    "strategies": {"fedapp", "sim", "deploy"},
    "fedapp": {"sim", "deploy"},
    "sim": {"deploy"},
}
SERVER_ONLY = (
    "fedapp.strategy_factory",
    "fedapp.federation",
    "fedapp.nodes",
    "fedapp.distillation",
    "fedapp.privacy",
    "strategies.dp",
    "strategies.accounting",
    "strategies.fedavg",
    "dp_accounting",
)


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    offenders = {
        str(path.relative_to(APP_DIR)): sorted(imported_packages(path) & FORBIDDEN[layer])
        for path in sorted((APP_DIR / layer).rglob("*.py"))
    }
    assert {path: packages for path, packages in offenders.items() if packages} == {}


def test_the_check_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "lazy.py"
    module.write_text("def build():\n    from fedapp.config import RunConfig\n    import sim.run\n")
    assert imported_packages(module) == {"fedapp", "sim"}


def test_a_clientapp_process_loads_no_server_only_code() -> None:
    probe = "import sys, fedapp.client_app; print(' '.join(sorted(sys.modules)))"
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=APP_DIR
        ).stdout.split()
    )
    assert "fedapp.client_app" in loaded
    assert sorted(loaded & set(SERVER_ONLY)) == []

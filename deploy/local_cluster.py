"""A Python handle on `deploy/local-cluster.sh`, for the deployment benchmark and tests.

It runs the very script a person runs (no second way of starting SuperLinks and
SuperNodes) and reads what the script leaves in its folder: `run/<name>.pid` for
the SuperLink and every SuperNode, and their logs beside them.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

from sim.superlink import flwr_environment

REPO_DIR = Path(__file__).resolve().parents[1]
SCRIPT = REPO_DIR / "deploy" / "local-cluster.sh"
SUPERLINK_STATES = ("file", "memory")  # `superlink/state.db`, or `--superlink-in-memory`


class ClusterError(RuntimeError):
    """`deploy/local-cluster.sh` failed."""


@dataclass(frozen=True)
class LocalCluster:
    """The local cluster in `folder`, reachable through the flwr connection `connection`."""

    folder: Path
    connection: str

    @property
    def run_folder(self) -> Path:
        return self.folder / "run"

    def data_folder(self, nodes: int) -> Path:
        """Where `up` puts (or finds) the data of each of `nodes` nodes: `node-<i>` inside."""
        return self.folder / "data" / f"{nodes}-nodes"

    def up(
        self,
        nodes: int,
        insecure: bool = False,
        executor: str = "warm",
        superlink_in_memory: bool = False,
        data: Path | None = None,
        proxy: bool = False,
    ) -> str:
        """Start the SuperLink and `nodes` SuperNodes and wait until all are online; return the script's output.

        With `data`, node i trains on `data/node-<i>` (`--data`), else on its share of MNIST.
        With `proxy`, nginx fronts the SuperLink and the nodes connect through it (`--proxy`).
        """
        arguments = ["--nodes", str(nodes), "--connection", self.connection, "--executor", executor]
        arguments += ["--data", str(data)] if data is not None else []
        switches = (("--insecure", insecure), ("--superlink-in-memory", superlink_in_memory), ("--proxy", proxy))
        flags = [flag for flag, on in switches if on]
        return self._script("up", *arguments, *flags)

    def down(self) -> str:
        """Stop every process `up` started; return the script's output."""
        return self._script("down")

    def pid(self, name: str) -> int:
        """The PID of `superlink` or `node-<i>`, as `up` recorded it."""
        return int((self.run_folder / f"{name}.pid").read_text())

    def fleet_port(self) -> int:
        """The port the SuperNodes connect to: the proxy's with `proxy`, else the SuperLink's own."""
        settings = dict(line.split("=", 1) for line in (self.run_folder / "cluster.env").read_text().splitlines())
        return int(settings["FLEET_PORT"])

    def log(self, name: str) -> Path:
        """The log file of `superlink` or `node-<i>`."""
        return self.run_folder / f"{name}.log"

    def processes(self) -> list[psutil.Process]:
        """Every live process the cluster started: SuperLink, SuperNodes and all their children."""
        found = []
        for pid_file in sorted(self.run_folder.glob("*.pid")):
            try:
                root = psutil.Process(int(pid_file.read_text()))
                found += [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
        return found

    def _script(self, command: str, *arguments: str) -> str:
        result = subprocess.run(
            [str(SCRIPT), command, "--dir", str(self.folder), *arguments],
            capture_output=True,
            text=True,
            env=flwr_environment(),
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(
                f"local-cluster.sh {command} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result.stdout

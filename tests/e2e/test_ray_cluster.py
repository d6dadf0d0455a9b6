"""`python -m sim run --ray-address`: the simulation engine attached to a running Ray cluster.

A Ray head is started on loopback with `ray start --head` in a private temporary
folder, a tiny run (2nn, 2 nodes, 2 rounds) goes through it on a SuperLink of its
own, and the head's logs must show the run's `ClientAppActor`s. The head is then
stopped by PID (never `ray stop`, which would stop every Ray of this user).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from sim.__main__ import main
from sim.superlink import LocalSuperLink, flwr_environment, venv_executable
from tests.helpers import free_port

STOP_TIMEOUT = 20.0


@dataclass(frozen=True)
class RayHead:
    """A Ray head node on 127.0.0.1 whose files live in `temp_dir`."""

    address: str
    temp_dir: Path

    def processes(self) -> list[psutil.Process]:
        """The head's processes (GCS, raylet, agents, workers): those naming its temp folder."""
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if str(self.temp_dir) in " ".join(proc.info["cmdline"] or []):
                found.append(proc)
        return found

    def actor_logs(self, actor_class: str) -> list[Path]:
        """Worker logs of the head that name `actor_class` (Ray writes `:actor_name:<class>`)."""
        logs = self.temp_dir / "session_latest" / "logs"
        return [
            path
            for path in logs.glob("worker-*.out")
            if f":actor_name:{actor_class}" in path.read_text(errors="replace")
        ]

    def stop(self) -> None:
        """Terminate the head's processes, then kill what is left."""
        family = self.processes()
        for proc in family:
            proc.terminate()
        _, alive = psutil.wait_procs(family, timeout=STOP_TIMEOUT)
        for proc in alive:
            proc.kill()
        psutil.wait_procs(alive, timeout=5)


@pytest.fixture
def ray_head() -> Iterator[RayHead]:
    """A 2-CPU Ray head on a free loopback port, stopped (every process) at the end."""
    temp_dir = Path(tempfile.mkdtemp(prefix="fedapp-ray-", dir="/tmp"))  # Ray's socket paths must stay short
    port = free_port()
    head = RayHead(f"127.0.0.1:{port}", temp_dir)
    command = [
        venv_executable("ray"),
        "start",
        "--head",
        "--port",
        str(port),
        "--node-ip-address",
        "127.0.0.1",
        "--num-cpus",
        "2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        "--temp-dir",
        str(temp_dir),
    ]
    try:
        started = subprocess.run(
            command, check=False, env=flwr_environment(), capture_output=True, text=True, timeout=120
        )
        assert started.returncode == 0, f"ray start failed: {started.stdout}{started.stderr}"
        yield head
    finally:
        head.stop()
        leftovers = [" ".join(proc.cmdline()) for proc in head.processes()]
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not leftovers, f"Ray processes left behind: {leftovers}"


def test_run_attaches_to_a_running_ray_cluster(
    ray_head: RayHead, flower_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLWR_LOCAL_SUPERLINK_HTTP_API_PORT", str(free_port()))  # a SuperLink of its own
    superlink = LocalSuperLink.default()
    try:
        code = main(
            [
                "run",
                "--ray-address",
                ray_head.address,
                "--nodes",
                "2",
                "-c",
                f"num-server-rounds=2 model=2nn output-dir={tmp_path} run-name=ray-cluster",
            ]
        )
        assert code == 0
        assert superlink.process().environ()["RAY_ADDRESS"] == ray_head.address
    finally:
        superlink.stop()
    rounds = json.loads((tmp_path / "ray-cluster" / "metrics.json").read_text())["rounds"]
    assert [record["round"] for record in rounds] == [0, 1, 2]
    assert all(record["nodes_replied"] == 2 for record in rounds[1:])
    assert ray_head.actor_logs("ClientAppActor"), "the Ray head ran no ClientAppActor: the run did not use the cluster"

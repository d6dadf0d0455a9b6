"""A warm task executor for a SuperNode: each ClientApp message runs in a process forked
from one that already has Flower and torch loaded.

Flower 1.41's `flower-superexec` runs every ClientApp task (one per message: train,
evaluate, ...) as a new `flwr-clientapp` process, which imports Flower and torch anew:
seconds per message, twice per round. Its warm executor pools exist only for
Kubernetes and not for ClientApps. `flower-supernode --isolation process` leaves task
execution to an outside process, and this is one: it imports Flower's ClientApp
runtime and torch once, asks the SuperNode's Runtime API for ClientApp tasks as
`flower-superexec` does, and runs each task in a child forked from itself, through
Flower's own `run_clientapp`. A task still gets its own process (a crash ends only
that task; the FAB's code is loaded fresh in it), but starts in milliseconds.

What every task would import on its own is imported once here: torch, and torch's
compiler front end (`torch._dynamo`), which creating an optimizer pulls in (seconds
per task otherwise). A task pulls its message from the SuperNode as soon as the task
exists, often before the SuperNode has stored the message's objects; it retries them
quickly (`deploy.supernode.quick_retries`) instead of after Flower's 1 s. With
`--doorbell` (how `deploy/start-supernode.sh` starts it) the executor asks for tasks
only when the SuperNode rings (`deploy/doorbell.py`) and once a second as a safety
net, instead of ten times a second; by the ring the message's objects are stored.
fedapp's own modules are deliberately not imported here: Flower's app loader would
reuse an already imported module instead of loading the run's FAB. This relies on
Flower internals (`RuntimeHttpClient.AcquireTask`, `run_clientapp`; unchanged from 1.41
to 1.42); pyproject.toml pins the version. Started by `deploy/start-supernode.sh`.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from types import FrameType

import httpx
from flwr.proto.runtime_pb2 import AcquireTaskRequest  # pylint: disable=no-name-in-module
from flwr.supercore.constant import TaskType
from flwr.supercore.inflatable import inflatable_utils
from flwr.supercore.interceptors import RuntimeVersionHttpInterceptor
from flwr.supercore.runtime import RuntimeHttpClient
from flwr.supernode.runtime.run_clientapp import run_clientapp

from deploy.doorbell import Doorbell
from deploy.supernode import quick_retries

POLL_MIN = 0.01
POLL_MAX = 0.1
GROWTH = 1.5
DOORBELL_SAFETY_POLL = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy.warm_executor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime-api-address", required=True, help="the SuperNode's Runtime API, e.g. 127.0.0.1:9094")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the SuperNode) is gone")
    parser.add_argument(
        "--doorbell",
        type=Path,
        help="named pipe the SuperNode rings when a task is waiting (python -m deploy.supernode --doorbell)",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serve ClientApp tasks until stopped (SIGTERM/SIGINT) or the parent process is gone."""
    args = _parser().parse_args(argv)
    stopping: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    # Before the seconds of importing torch: a node stopped while starting still removes its doorbell.
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    doorbell = None if args.doorbell is None else Doorbell(args.doorbell)
    try:
        import torch._dynamo  # noqa: F401, PLC0415 (torch, and what `torch.optim` loads on first use, once for all tasks)

        _serve(args, doorbell, stopping)
    finally:
        if doorbell is not None:
            doorbell.close()


def _serve(args: argparse.Namespace, doorbell: Doorbell | None, stopping: list[int]) -> None:
    """Fork a task for every ClientApp task the SuperNode hands out, until `stopping` or the parent is gone."""
    client = RuntimeHttpClient.from_server_address(
        server_address=args.runtime_api_address,
        insecure=True,
        root_certificates=None,
        interceptors=[RuntimeVersionHttpInterceptor(component_name="SuperExec")],
    )
    print(f"[fedapp] warm executor PID {os.getpid()} serving ClientApp tasks of {args.runtime_api_address}", flush=True)
    wait = POLL_MAX
    while not stopping and (args.parent_pid is None or os.getppid() == args.parent_pid):
        _reap_children()
        try:
            response = client.AcquireTask(AcquireTaskRequest(supported_task_types=[TaskType.CLIENT_APP]))
        except httpx.TransportError:  # the SuperNode's Runtime API is not up yet (or gone: checked above)
            time.sleep(POLL_MAX)
            continue
        if response.HasField("task") and response.token:
            _fork_task(args.runtime_api_address, response.token)
            wait = POLL_MIN
        elif doorbell is not None:
            doorbell.wait(DOORBELL_SAFETY_POLL)
        else:
            time.sleep(wait)
            wait = next_wait(wait)
    client.close()


def next_wait(wait: float) -> float:
    """The wait after an empty poll: 1.5 times the last, at most `POLL_MAX`.

    Right after a task the next one of the round follows soon (the SuperNode pulls
    again at once), so polls start `POLL_MIN` apart; an idle node settles at
    `POLL_MAX`, ten polls a second of its own local Runtime API.
    """
    return min(wait * GROWTH, POLL_MAX)


def _fork_task(runtime_api_address: str, token: str) -> None:
    """Run one task in a forked child, through Flower's `flwr-clientapp` code path."""
    parent = os.getpid()
    if os.fork() != 0:
        return
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    inflatable_utils.pull_objects = quick_retries(inflatable_utils.pull_objects)
    code = 0
    try:
        run_clientapp(
            runtime_api_address=runtime_api_address,
            token=token,
            insecure=True,
            certificates=None,
            parent_pid=parent,
            runtime_dependency_install=False,
        )
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
    except BaseException:  # noqa: BLE001 (a task must never return into the executor's loop)
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _reap_children() -> None:
    """Collect finished task processes, so none stays a zombie."""
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            continue
    except ChildProcessError:
        return


if __name__ == "__main__":
    main()

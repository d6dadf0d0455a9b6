"""`python -m deploy <command>`: node data for edge nodes, connection checks, the deployment bench.

The SuperLink, SuperNodes and local cluster themselves are started by the shell
scripts beside this file (`deploy/*.sh --help`); the warm executor by
`deploy/start-supernode.sh` (`python -m deploy.warm_executor`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from deploy.local_cluster import SUPERLINK_STATES, ClusterError
from fedapp.config import ConfigError
from sim.console import speaking_as
from sim.flwr_cli import FlwrCommandError

APP_DIR = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m deploy", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    node_data = commands.add_parser(
        "node-data", help="write each node's share of the data to its own folder (edge demo)"
    )
    node_data.add_argument("--nodes", type=int, required=True, help="number of nodes (partitions)")
    node_data.add_argument("--out", type=Path, required=True, help="folder that receives node-0, node-1, ...")
    node_data.add_argument(
        "--layout", choices=("parquet", "imagefolder"), default="parquet", help="file layout (default: parquet)"
    )
    node_data.add_argument(
        "-c", "--run-config", action="append", default=[], metavar="'k=v ...'", help="dataset, partitioner, seed, ..."
    )

    check = commands.add_parser("check-connection", help="say why a flwr connection cannot reach its SuperLink")
    check.add_argument("name", help="the connection's name in $FLWR_HOME/config.toml")

    bench = commands.add_parser("bench", help="seconds per round in deployment next to simulation, same workload")
    bench.add_argument("--nodes", type=int, default=2, help="number of nodes (default: 2)")
    bench.add_argument("--rounds", type=int, default=4, help="number of rounds (default: 4)")
    bench.add_argument(
        "--executors",
        default="warm",
        help="deployment executors to compare: warm, flower or warm,flower (default: warm)",
    )
    bench.add_argument(
        "--superlink-state",
        choices=SUPERLINK_STATES,
        default="file",
        help="the SuperLink's state: in its SQLite file, as deployed (default), or in memory (--in-memory)",
    )
    bench.add_argument("--out", type=Path, help="folder for outputs and the cluster (default: a new temporary folder)")
    bench.add_argument(
        "-c", "--run-config", action="append", default=[], metavar="'k=v ...'", help="run-config overrides"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and dispatch; returns the exit code."""
    args = _parser().parse_args(argv)
    with speaking_as("deploy"):
        return _dispatch(args)


def _dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; returns the exit code."""
    try:
        if args.command == "node-data":
            from deploy.node_data import write_node_data  # noqa: PLC0415 (torch import only for commands that need it)

            write_node_data(APP_DIR, args.out, args.nodes, args.layout, args.run_config)
            return 0
        if args.command == "check-connection":
            from deploy.connections import diagnose  # noqa: PLC0415

            print(diagnose(args.name))
            return 0
        if args.command == "bench":
            from deploy.bench import BenchSetup, bench_command  # noqa: PLC0415

            return bench_command(
                APP_DIR,
                args.run_config,
                BenchSetup(args.nodes, args.rounds, args.executors.split(","), args.superlink_state),
                args.out,
            )
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (FlwrCommandError, ClusterError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main())

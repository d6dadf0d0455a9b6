"""`python -m sim <command>`: runs, comparisons, the centralized baseline and benchmarks.

Everything here runs on Flower's simulation engine (or trains centrally); the edge
deployment has its own entry point, `python -m deploy`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fedapp.config import ConfigError
from sim.flwr_cli import FlwrCommandError, echo
from sim.paper_presets import PAPER_PRESETS
from sim.presets import PRESETS
from sim.superlink import LocalSuperLink, SuperLinkError

APP_DIR = Path(__file__).resolve().parents[1]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sim", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run fedapp once on the local simulation SuperLink")
    run.add_argument("--nodes", type=int, help="number of simulated SuperNodes (preset's default: 10)")
    run.add_argument("--preset", choices=sorted(PRESETS), default="cpu", help="client resources (default: cpu)")
    run.add_argument(
        "-c", "--run-config", action="append", default=[], metavar="'k=v ...'", help="run-config overrides"
    )
    run.add_argument("--ray-address", help="attach the simulation to this running Ray cluster (e.g. 127.0.0.1:6379)")
    run.add_argument("--app", type=Path, default=APP_DIR, help="the Flower app folder (default: this project)")

    compare = commands.add_parser(
        "compare", help="run several strategies on identical partitions and seeds, then compare"
    )
    compare.add_argument("--strategies", help="strategies to compare, e.g. fedavg,fedprox or fedavg,prox1=fedprox")
    compare.add_argument("--preset", choices=sorted(PAPER_PRESETS), help="a paper's experiment (sim/paper_presets.py)")
    compare.add_argument(
        "--set", nargs=2, action="append", default=[], metavar=("LABEL", "'k=v ...'"), help="settings of one strategy"
    )
    compare.add_argument("--rounds", type=int, help="num-server-rounds of every run")
    compare.add_argument("--nodes", type=int, help="simulated SuperNodes (default: 10)")
    compare.add_argument(
        "--seeds", help="comma-separated seeds, one run per strategy and seed (default: a preset's 0,1,2, else 0)"
    )
    compare.add_argument(
        "-c",
        "--run-config",
        action="append",
        default=[],
        metavar="'k=v ...'",
        help="run-config overrides for every run",
    )
    compare.add_argument(
        "--target", type=float, help="accuracy (R² for a regression) for rounds/MB-to-target (default: 0.9)"
    )
    compare.add_argument(
        "--centralized-epochs", type=int, help="epochs of the centralized baseline (default: the rounds)"
    )
    compare.add_argument(
        "--world-size", type=int, default=2, help="DDP processes of the centralized baseline (default: 2)"
    )
    compare.add_argument("--resources", choices=sorted(PRESETS), default="cpu", help="client resources (default: cpu)")
    compare.add_argument("--out", type=Path, required=True, help="a new folder for the comparison's outputs")
    compare.add_argument("--app", type=Path, default=APP_DIR, help="the Flower app folder (default: this project)")

    centralized = commands.add_parser("centralized", help="train the centralized baseline with DistributedDataParallel")
    centralized.add_argument("--world-size", type=int, default=2, help="DDP processes (default: 2)")
    centralized.add_argument(
        "--nodes", type=int, default=10, help="pool the training data of this many nodes (default: 10)"
    )
    centralized.add_argument("--epochs", type=int, help="epochs over the pooled data (default: num-server-rounds)")
    centralized.add_argument(
        "-c", "--run-config", action="append", default=[], metavar="'k=v ...'", help="run-config overrides"
    )
    centralized.add_argument("--out", type=Path, help="the run folder (default: <output-dir>/centralized-<time>)")
    centralized.add_argument("--app", type=Path, default=APP_DIR, help="the Flower app folder (default: this project)")

    commands.add_parser("stop", help="stop the SuperLink that `python -m sim` started")

    overhead = commands.add_parser(
        "bench", help="simulation vs a plain PyTorch loop: cohorts of 10-100 clients, 1,000-100,000 nodes, memory, GPU"
    )
    overhead.add_argument(
        "--quick", action="store_true", help="3 rounds of a subset of the runs (under 10 minutes on 2 cores)"
    )
    overhead.add_argument(
        "--sections", help="comma-separated subset of cohorts,overhead,scale,report,gpu (default: all, or --quick's)"
    )
    overhead.add_argument("--rounds", type=int, help="rounds of every run (default: 10, or 3 with --quick)")
    overhead.add_argument("--out", type=Path, help="a new JSON file for the figures (default: ./bench-<time>.json)")
    overhead.add_argument("--app", type=Path, default=APP_DIR, help="the Flower app folder (default: this project)")

    plot = commands.add_parser("bench-plot", help="draw seconds per round vs clients per round from bench JSON files")
    plot.add_argument("out", type=Path, help="the PNG to write")
    plot.add_argument("reports", nargs="+", metavar="LABEL=FILE.json", help="bench reports, e.g. before=a.json")

    return parser


def main(argv: list[str] | None = None) -> int:  # noqa: PLR0911 (one return per subcommand)
    """Parse the command line and dispatch; returns the exit code."""
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from sim.run import run_command  # noqa: PLC0415 (torch import only for commands that need it)

            return run_command(args.app.resolve(), args.run_config, args.preset, args.nodes, args.ray_address)
        if args.command == "compare":
            from sim.compare import compare_command  # noqa: PLC0415

            return compare_command(args)
        if args.command == "centralized":
            from sim.centralized import centralized_command  # noqa: PLC0415

            return centralized_command(
                args.app.resolve(), args.run_config, args.nodes, args.world_size, args.epochs, args.out
            )
        if args.command == "stop":
            return _stop()
        if args.command == "bench":
            from sim.bench import bench_command as overhead_command  # noqa: PLC0415

            sections = tuple(args.sections.split(",")) if args.sections else None
            return overhead_command(args.app.resolve(), args.quick, args.out, sections, args.rounds)
        if args.command == "bench-plot":
            from sim.bench_plot import plot_command  # noqa: PLC0415

            return plot_command(args.out, args.reports)
    except (ConfigError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (SuperLinkError, FlwrCommandError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 2


def _stop() -> int:
    superlink = LocalSuperLink.default()
    if superlink.stop():
        echo(f"stopped the SuperLink on 127.0.0.1:{superlink.port} and its processes")
    else:
        echo(f"no SuperLink started by fedapp on 127.0.0.1:{superlink.port}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""`python -m sim centralized`: the centralized baseline, trained with DistributedDataParallel.

The upper bound every federated strategy is measured against: the run's model, with
the same initialization, trained on the pooled data of all nodes (exactly the samples
the nodes train on, public slice excluded) and evaluated on the same held-out test set
after every epoch. One process per rank (`torch.multiprocessing.spawn`), gloo on CPU
and NCCL on GPUs. Every epoch is one seeded shuffle of the pool split into equal
shards, one per rank; DDP averages the ranks' gradients, so a step sees a global batch
of `batch-size` samples, as a node's step does, with the nodes' SGD momentum
(`client-momentum`), restarted every epoch as a node restarts it every round.

The outputs are a run folder like a federated run's: `metrics.json` (a record per
epoch, numbered as `round`), `final_model.pt` and `accuracy.png`, and with `tracking`
the same TensorBoard/MLflow logging (rank 0 logs).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from flwr.app import ArrayRecord
from torch.nn.parallel import DistributedDataParallel

from fedapp import tasks
from fedapp.config import ConfigError, RunConfig
from fedapp.data import DataSpec, LabelledSplit, data_source, load_node_data, load_test_split, run_schema
from fedapp.data.images import augmentation
from fedapp.evaluation import run_model
from fedapp.outputs import METRICS_FILE, PLOT_FILE, RunOutputs
from fedapp.plots import plot_run
from fedapp.tracking import TrackedRun, Trackers, open_tracker
from fedapp.training import evaluate, train_sgd
from sim.flwr_cli import echo
from sim.overrides import parse_overrides
from sim.run import RunRequest
from strategies.schedule import round_learning_rate
from strategies.seeding import torch_generator

RUN_ID = 0


@dataclass(frozen=True)
class CentralizedRequest:
    """What to train: the validated config, whose nodes' data to pool, the ranks and the epochs."""

    config: RunConfig
    nodes: int
    world_size: int
    epochs: int

    @classmethod
    def build(
        cls,
        app_dir: Path,
        override_texts: list[str],
        nodes: int,
        world_size: int,
        epochs: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> CentralizedRequest:
        """Validate everything before any work (raises `ConfigError`); epochs default to the rounds."""
        config = RunRequest.build(app_dir, override_texts, nodes=nodes, extra=extra).config
        if world_size < 1:
            raise ConfigError(f"--world-size = {world_size} is not allowed; allowed: an integer >= 1")
        epochs = config.num_server_rounds if epochs is None else epochs
        if epochs < 1:
            raise ConfigError(f"--epochs = {epochs} is not allowed; allowed: an integer >= 1")
        return cls(config, nodes, world_size, epochs)


def pooled_training_data(spec: DataSpec, nodes: int) -> LabelledSplit:
    """The union of the `nodes` nodes' training splits: what the federation trains on, in one place."""
    splits = [load_node_data(spec, partition_id, nodes).train for partition_id in range(nodes)]
    features, labels = torch.cat([s.features for s in splits]), torch.cat([s.labels for s in splits])
    return LabelledSplit(features, labels, splits[0].target_offset, splits[0].target_scale)


def rank_shard(data: LabelledSplit, seed: int, epoch: int, rank: int, world_size: int) -> LabelledSplit:
    """Rank `rank`'s share of epoch `epoch`: every `world_size`-th sample of a seeded shuffle.

    The shuffle is cut to a multiple of `world_size`, so every rank takes the same
    number of steps (DDP needs each rank in every gradient all-reduce).
    """
    order = torch.randperm(len(data), generator=torch_generator(seed, "centralized-order", epoch))
    usable = order[: len(order) - len(order) % world_size]
    mine = usable[rank::world_size]
    return LabelledSplit(data.features[mine], data.labels[mine], data.target_offset, data.target_scale)


def train_centralized(request: CentralizedRequest) -> Path:
    """Train the baseline on `request.world_size` processes; return its run folder.

    Raises
    ------
    ConfigError
        If the run folder already holds files (nothing is overwritten).
    """
    outputs = RunOutputs.create(request.config, RUN_ID)
    outputs.header["centralized"] = {"world_size": request.world_size, "nodes": request.nodes, "epochs": request.epochs}
    echo(
        f"centralized baseline: model={request.config.model} data of {request.nodes} nodes, "
        f"{request.epochs} epochs, {request.world_size} ranks ({_backend(request.world_size)}) -> {outputs.folder}"
    )
    with tempfile.TemporaryDirectory(prefix="fedapp-ddp-") as rendezvous:
        mp.spawn(
            _train_rank, args=(request, f"file://{rendezvous}/store", outputs), nprocs=request.world_size, join=True
        )
    return outputs.folder


def _backend(world_size: int) -> str:
    """NCCL when every rank can have its own GPU, gloo otherwise."""
    return "nccl" if torch.cuda.is_available() and torch.cuda.device_count() >= world_size else "gloo"


def _rank_device(rank: int) -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", rank % torch.cuda.device_count())
    return torch.device("cpu")


def _train_rank(rank: int, request: CentralizedRequest, rendezvous: str, outputs: RunOutputs) -> None:
    """One DDP rank: train on its shards; rank 0 also evaluates and writes the outputs."""
    dist.init_process_group(
        _backend(request.world_size), init_method=rendezvous, rank=rank, world_size=request.world_size
    )
    try:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // request.world_size))
        config, device = request.config, _rank_device(rank)
        schema = run_schema(config)
        model = run_model(config, schema).to(device)
        augment = augmentation(config.augment, schema.input_shape)
        ddp = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        pool = pooled_training_data(DataSpec.from_config(config), request.nodes)
        test_set = load_test_split(data_source(config)) if rank == 0 else None
        tracker = _open_tracker(config, outputs) if rank == 0 else Trackers({})
        batch_size = max(1, config.batch_size // request.world_size)
        if test_set is not None:
            _record(outputs, tracker, model, test_set, device, request.epochs, {"round": 0}, time.monotonic())
        for epoch in range(1, request.epochs + 1):
            started = time.monotonic()
            learning_rate = round_learning_rate(config.learning_rate, config.lr_decay, epoch)
            result = train_sgd(
                ddp,
                rank_shard(pool, config.seed, epoch, rank, request.world_size),
                epochs=1,
                batch_size=batch_size,
                learning_rate=learning_rate,
                generator=torch_generator(config.seed, "centralized-batches", epoch, rank),
                momentum=config.client_momentum,
                device=device,
                augment=augment,
            )
            train_loss = torch.tensor([result.loss], device=device)
            dist.all_reduce(train_loss)
            if test_set is not None:
                record = {
                    "round": epoch,
                    "train_loss": train_loss.item() / request.world_size,
                    "learning_rate": learning_rate,
                    "bytes_down": 0,
                    "bytes_up": 0,
                }
                _record(outputs, tracker, model, test_set, device, request.epochs, record, started)
        if test_set is not None:
            model_path = outputs.save_model(ArrayRecord({k: v.detach().cpu() for k, v in model.state_dict().items()}))
            plot_run(
                outputs.rounds,
                outputs.folder / PLOT_FILE,
                f"centralized (DDP, {request.world_size} ranks) · {config.model} · {config.dataset}",
                config.task,
            )
            tracker.finish([outputs.folder / METRICS_FILE, model_path, outputs.folder / PLOT_FILE], completed=True)
        # Tear down together: a rank that destroyed its group while rank 0 was still writing the
        # outputs was once aborted by gloo ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _open_tracker(config: RunConfig, outputs: RunOutputs) -> Trackers:
    """The baseline's tracking sinks (`tracking`), named like its folder, beside the federated runs'."""
    tracker = open_tracker(TrackedRun(config, outputs.folder.name, outputs.folder))
    outputs.record_tracking(tracker.identity)
    return tracker


def _record(
    outputs: RunOutputs,
    tracker: Trackers,
    model: torch.nn.Module,
    test_set: LabelledSplit,
    device: torch.device,
    epochs: int,
    record: dict[str, Any],
    started: float,
) -> None:
    """Evaluate on the test set, append the epoch's record to `metrics.json`, track and print it."""
    task = tasks.task_of(test_set.labels)
    metrics = tasks.summary(task, evaluate(model, test_set, device))
    full = {
        "round": record["round"],
        **{f"central_{name}": value for name, value in metrics.items()},
        **record,
        "seconds": time.monotonic() - started,
    }
    outputs.add_round(full)
    tracker.log_round(full)
    train = f" | train loss {record['train_loss']:.4f}" if "train_loss" in record else ""
    echo(
        f"centralized epoch {record['round']}/{epochs} | {' | '.join(tasks.describe('central', task, full))}"
        f"{train} | {time.monotonic() - started:.1f}s"
    )


def centralized_command(
    app_dir: Path, override_texts: list[str], nodes: int, world_size: int, epochs: int | None, out: Path | None
) -> int:
    """The `centralized` subcommand; returns the process exit code."""
    if out is not None:
        folder = out.expanduser().absolute()
        extra = {"output-dir": str(folder.parent), "run-name": folder.name}
    elif "run-name" in parse_overrides(override_texts):
        extra = {}
    else:
        extra = {"run-name": time.strftime("centralized-%Y%m%d-%H%M%S")}
    request = CentralizedRequest.build(app_dir, override_texts, nodes, world_size, epochs, extra)
    folder = train_centralized(request)
    final = json.loads((folder / METRICS_FILE).read_text())["rounds"][-1]
    echo(f"outputs: {folder}")
    echo(f"final {tasks.headline('central', request.config.task, final)} (epoch {final['round']})")
    return 0

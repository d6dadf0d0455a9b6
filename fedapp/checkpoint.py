"""Checkpoints: after every round a run's folder holds everything needed to resume it.

`checkpoint.pt` is rewritten atomically after each round (a crash mid-write leaves
the previous round's). It holds the round just completed, the run config, the global
arrays, the strategy's state between rounds (`strategies/hooks.py` `state_dict`: server momentum,
DP ledger, distillation consensus, FedOpt moments), the metrics records so far, how
the nodes shared the dataset (`partition_counts`) and the tracked runs it logs to
(`tracking`: TensorBoard's log folder, MLflow's run), so a resumed run continues them.
Every random choice of a run is derived from (seed, round, ...) (`seeding.py`), so no
RNG state needs saving: a run resumed after round k makes the draws an uninterrupted
run makes from round k + 1 on.

`-c resume-from=<run folder>` (or that folder's `checkpoint.pt`) loads the checkpoint, checks it is intact and
comes from a run with the same settings (only those in `MAY_CHANGE_ON_RESUME` may
differ) and, once the nodes are known, the same partitioning of the data
(`check_same_nodes`); the new run continues with round k + 1 in its own new folder.

The file is a torch archive loaded with `weights_only=True`: tensors, numbers,
strings, lists and dicts only, never pickled objects.
"""

from __future__ import annotations

import json
import os
import pickle
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import ArrayRecord

from fedapp.atomic import atomic_write
from fedapp.config import ConfigError, RunConfig

CHECKPOINT_FILE = "checkpoint.pt"
FORMAT_VERSION = 1
MAY_CHANGE_ON_RESUME = (
    "num-server-rounds",
    "output-dir",
    "run-name",
    "resume-from",
    "round-timeout",
    "fault-injection",
    "tracking",
    "tracking-uri",
    "tracking-experiment",
)


@dataclass(frozen=True)
class Checkpoint:
    """A run's state after round `server_round`."""

    server_round: int
    config: dict[str, Any]
    arrays: ArrayRecord
    strategy_state: dict[str, Any]
    rounds: list[dict[str, Any]]
    partition_counts: list[int] | None = None
    tracking: dict[str, Any] = field(default_factory=dict)


def atomic_torch_save(path: Path, document: Any) -> None:
    """`torch.save(document)` to `path`, atomically."""
    atomic_write(path, lambda file: torch.save(document, file))


def write_checkpoint(path: Path, checkpoint: Checkpoint, rounds_json: str | None = None) -> None:
    """Atomically replace the checkpoint at `path` with `checkpoint` (`rounds_json`: its rounds, already as JSON)."""
    document = {
        "format": FORMAT_VERSION,
        "round": checkpoint.server_round,
        "config": json.dumps(checkpoint.config),
        "arrays": checkpoint.arrays.to_torch_state_dict(),
        "strategy": _to_tensors(checkpoint.strategy_state),
        "rounds": json.dumps(checkpoint.rounds) if rounds_json is None else rounds_json,
        "partition_counts": json.dumps(checkpoint.partition_counts),
        "tracking": json.dumps(checkpoint.tracking),
    }
    atomic_torch_save(path, document)


def read_checkpoint(path: Path) -> Checkpoint:
    """Load the checkpoint at `path`.

    Raises
    ------
    ValueError
        If the file is truncated, not a checkpoint, of another format version, or holds
        pickled objects (never unpickled: loading is `weights_only`).
    """
    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle protocol before refusing it
            warnings.simplefilter("ignore", UserWarning)
            document = torch.load(path, map_location="cpu", weights_only=True)
        if document["format"] != FORMAT_VERSION:
            raise ValueError(f"format {document['format']}, this fedapp reads format {FORMAT_VERSION}")
        return Checkpoint(
            server_round=int(document["round"]),
            config=json.loads(document["config"]),
            arrays=ArrayRecord(document["arrays"]),
            strategy_state=_to_arrays(document["strategy"]),
            rounds=json.loads(document["rounds"]),
            partition_counts=json.loads(document.get("partition_counts", "null")),
            tracking=json.loads(document.get("tracking", "{}")),
        )
    except pickle.UnpicklingError as error:
        raise ValueError(
            f"{path} holds pickled Python objects, which fedapp does not load (a checkpoint is tensors, numbers "
            "and text only): it is not a checkpoint fedapp wrote"
        ) from error
    except (RuntimeError, EOFError, KeyError, TypeError, ValueError, OSError) as error:
        raise ValueError(
            f"{path} is corrupt or truncated ({type(error).__name__}: {_first_sentence(error)})"
        ) from error


def _first_sentence(error: BaseException) -> str:
    """The first sentence of an error's message: torch's run on for paragraphs, which a one-line refusal cannot hold."""
    line = str(error).strip().split("\n", 1)[0]
    sentence, stop, _ = line.partition(". ")
    return sentence + ("." if stop else "")


def resume_point(config: RunConfig) -> Checkpoint | None:
    """The checkpoint `resume-from` names, checked against `config`; None when not resuming.

    Raises
    ------
    ConfigError
        If the folder (or the checkpoint file, which may be named instead) is missing or
        unreadable, holds no checkpoint or a corrupt one, or the checkpoint's run had
        other settings or already ran every round.
    """
    if not config.resume_from:
        return None
    given = Path(config.resume_from)
    folder, path = (given.parent, given) if given.is_file() else (given, given / CHECKPOINT_FILE)
    if not folder.is_dir():
        raise _refusal(config, "no such folder or file")
    if not os.access(folder, os.R_OK | os.X_OK) or (path.exists() and not os.access(path, os.R_OK)):
        raise _refusal(config, "cannot be read (permissions)")
    if not path.exists():
        raise _refusal(config, f"holds no {CHECKPOINT_FILE} (a run writes one after every round)")
    try:
        checkpoint = read_checkpoint(path)
    except ValueError as error:
        raise _refusal(config, str(error)) from None
    _check_same_run(config, checkpoint)
    return checkpoint


def _check_same_run(config: RunConfig, checkpoint: Checkpoint) -> None:
    """Refuse settings other than the checkpoint's (but those allowed to change) and nothing left to run."""
    current = config.to_mapping()
    for key in sorted(set(current) | set(checkpoint.config)):
        if key in MAY_CHANGE_ON_RESUME:
            continue
        saved = checkpoint.config.get(key, "<absent>")
        if current.get(key, "<absent>") != saved:
            raise ConfigError(
                f"run-config key {key!r} = {current.get(key)!r} differs from the checkpoint in {config.resume_from}; "
                f"allowed: {saved!r} (a resumed run keeps every setting but {', '.join(MAY_CHANGE_ON_RESUME)})"
            )
    if config.num_server_rounds <= checkpoint.server_round:
        raise ConfigError(
            f"run-config key 'num-server-rounds' = {config.num_server_rounds} leaves nothing to resume; "
            f"allowed: > {checkpoint.server_round}, the rounds {config.resume_from} already completed"
        )


def check_same_nodes(config: RunConfig, checkpoint: Checkpoint, partition_counts: list[int]) -> None:
    """Refuse to resume on nodes that cut the dataset into another number of shares.

    A simulation's nodes hold partition i of `num-partitions` = its number of nodes, so
    resuming it with another number of nodes would train on other data. Nodes with
    their own data (count 0) may come and go; checkpoints without the counts pass.
    """
    saved = checkpoint.partition_counts
    if saved is None or saved == partition_counts:
        return
    raise ConfigError(
        f"this run's nodes hold shares of num-partitions={partition_counts}, but the run in "
        f"{config.resume_from} trained on num-partitions={saved}; allowed: the same nodes "
        "(in simulation: as many simulated nodes as that run had)"
    )


def _refusal(config: RunConfig, problem: str) -> ConfigError:
    return ConfigError(
        f"run-config key 'resume-from' = {config.resume_from!r}: {problem}; "
        f"allowed: the folder of an earlier run, or its {CHECKPOINT_FILE}"
    )


def _to_tensors(value: Any) -> Any:
    """`value` with every NumPy array replaced by a tensor (what `weights_only` loading accepts)."""
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value, copy=True))
    if isinstance(value, dict):
        return {key: _to_tensors(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_tensors(item) for item in value]
    return value


def _to_arrays(value: Any) -> Any:
    """The inverse of `_to_tensors`."""
    if isinstance(value, torch.Tensor):
        return value.numpy()
    if isinstance(value, dict):
        return {key: _to_arrays(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_arrays(item) for item in value]
    return value

"""A run's outputs: `<output-dir>/<run-name or run-id>/` with metrics, model and plot.

- `metrics.json`: the run's settings, what its strategy promises (`client_sampling`,
  `privacy`: the terms its epsilon refers to), why it stopped early if it did
  (`stopped`), and one record per round (round 0 is the initial model), rewritten
  atomically after every round so it is always readable; a resumed run's starts with
  the records of the run it resumes. Each record is turned into JSON once
  (`RoundTexts`), so a round's rewrite costs a copy of the file, not a new
  serialization of every earlier round (1,500 rounds of 100 clients: 18 MB, about a
  second to serialize);
- `checkpoint.pt`: what resuming the run needs, rewritten atomically after every
  round (`checkpoint.py`);
- `final_model.pt`: the final global weights as a PyTorch `state_dict`;
- `accuracy.png`: central (and federated) accuracy, or R² for a regression, and loss per round.

The ServerApp's working directory is the SuperLink's, so a relative `output-dir` is
resolved to an absolute path once, here, and logged. fedapp's local SuperLink runs in
the project folder (`sim/superlink.py`), so a plain `flwr run .` writes under
`<project>/outputs/`; `python -m sim` makes the path absolute where it was typed.
"""

from __future__ import annotations

import json
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord

from fedapp.atomic import atomic_write_text
from fedapp.checkpoint import CHECKPOINT_FILE, Checkpoint, atomic_torch_save, write_checkpoint
from fedapp.config import ConfigError, RunConfig

METRICS_FILE = "metrics.json"
MODEL_FILE = "final_model.pt"
PLOT_FILE = "accuracy.png"


def check_output_dir(output_dir: str) -> None:
    """Refuse an `output-dir` in which no run folder can be made, before any work starts.

    Creating a folder is what a run does there first, so the check creates (and removes)
    a temporary one in the deepest folder of the path that exists: permissions, a
    read-only or virtual file system (`/proc`) and a file in the way all show up, and
    nothing is left behind.

    Raises
    ------
    ConfigError
        Naming the key, the value and the reason.
    """
    path = Path(output_dir).expanduser().absolute()
    existing = next(folder for folder in (path, *path.parents) if folder.exists())
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        Path(tempfile.mkdtemp(prefix=".fedapp-write-check-", dir=existing)).rmdir()
    except OSError as error:
        raise ConfigError(
            f"run-config key 'output-dir' = {output_dir!r} cannot be created or written "
            f"({error.strerror or error}); allowed: a folder this user can create and write"
        ) from None


def resolve_run_folder(config: RunConfig, run_id: int) -> Path:
    """The absolute folder of this run's outputs."""
    base = Path(config.output_dir).expanduser()
    if not base.is_absolute():
        base = Path.cwd() / base
    return base / (config.run_name or str(run_id))


class RunOutputs:
    """Writes a run's files into its own folder, never over another run's."""

    def __init__(self, folder: Path, header: dict[str, Any], rounds: list[dict[str, Any]] | None = None) -> None:
        self.folder = folder
        self.header = header
        self.rounds: list[dict[str, Any]] = list(rounds or [])
        self.texts = RoundTexts()

    @classmethod
    def create(cls, config: RunConfig, run_id: int, resumed: Checkpoint | None = None) -> RunOutputs:
        """Make the run's folder (refusing one that already holds files), continuing `resumed`'s records."""
        folder = resolve_run_folder(config, run_id)
        if folder.exists() and any(folder.iterdir()):
            raise ConfigError(
                f"output folder {folder} already holds files; choose another 'run-name' or 'output-dir' "
                "(fedapp never writes over an earlier run)"
            )
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"run-config key 'output-dir' = {config.output_dir!r}: the run folder {folder} cannot be created "
                f"({error.strerror or error}); allowed: a folder this user can create and write"
            ) from None
        header = {
            "run_id": run_id,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "folder": str(folder),
            "config": config.to_mapping(),
            "partition_counts": {},
        }
        if resumed is None:
            return cls(folder, header)
        header["resumed_from"] = {"folder": config.resume_from, "round": resumed.server_round}
        return cls(folder, header, resumed.rounds)

    def record_num_partitions(self, num_partitions: list[int]) -> None:
        """Note how the connected nodes share the dataset: their distinct `num-partitions` (checked on resume)."""
        self.header["num_partitions"] = num_partitions

    def record_training_samples(self, samples: dict[str, int]) -> None:
        """Note each node's number of training samples (`partition_counts`, by node key), as its replies report it.

        A node appears once it has trained; later reports replace earlier ones.
        """
        counts = {**self.header.get("partition_counts", {}), **samples}
        self.header["partition_counts"] = dict(sorted(counts.items()))

    def record_run_summary(self, summary: dict[str, Any]) -> None:
        """Note what the strategy says about the whole run (client sampling, privacy terms)."""
        self.header.update(summary)

    def record_stop(self, next_round: int, reason: str) -> None:
        """Note that the run ended before `next_round` (e.g. its privacy budget is spent) and why."""
        self.header["stopped"] = {"before_round": next_round, "reason": reason}
        self._write_metrics()

    def record_tracking(self, identity: dict[str, Any]) -> None:
        """Note the tracked runs this run logs to (kept in the checkpoint to continue them on resume)."""
        self.header["tracking"] = identity

    def add_round(self, record: dict[str, Any]) -> None:
        """Append one round's record and rewrite `metrics.json`."""
        self.rounds.append(record)
        self._write_metrics()

    def amend_round(self, server_round: int, fields: dict[str, Any]) -> bool:
        """Add `fields` to the record of round `server_round` and rewrite `metrics.json`; False if there is none.

        Federated evaluation riding on training learns how a round's model does one
        round later (`federation.py`); the record it belongs to gets it then.
        """
        for index in range(len(self.rounds) - 1, -1, -1):
            if self.rounds[index]["round"] == server_round:
                self.rounds[index].update(fields)
                self.texts.forget(index)
                self._write_metrics()
                return True
        return False

    def _write_metrics(self) -> None:
        atomic_write_text(self.folder / METRICS_FILE, self.texts.document(self.header, self.rounds) + "\n")

    def save_checkpoint(self, record: dict[str, Any], arrays: ArrayRecord, strategy_state: dict[str, Any]) -> None:
        """Atomically replace the run's checkpoint with the state after `record`'s round.

        Called before `add_round(record)`, so `metrics.json` never shows a round that
        the checkpoint lacks.
        """
        checkpoint = Checkpoint(
            record["round"],
            self.header["config"],
            arrays,
            strategy_state,
            [*self.rounds, record],
            self.header.get("num_partitions"),
            self.header.get("tracking", {}),
        )
        write_checkpoint(self.folder / CHECKPOINT_FILE, checkpoint, self.texts.compact([*self.rounds, record]))

    def save_model(self, arrays: ArrayRecord) -> Path:
        """Write the final global weights as a PyTorch state_dict."""
        path = self.folder / MODEL_FILE
        atomic_torch_save(path, arrays.to_torch_state_dict())
        return path

    def save_plot(self) -> Path:
        """Draw accuracy and loss per round into `accuracy.png`."""
        from fedapp.plots import plot_run  # noqa: PLC0415 (matplotlib only at the end of a run)

        path = self.folder / PLOT_FILE
        config = self.header["config"]
        title = f"{config['strategy']} · {config['model']} · {config['dataset']}"
        plot_run(self.rounds, path, title, config["task"])
        return path


class RoundTexts:
    """Round records as JSON, each serialized once: `json.dumps` of the whole list or document, character for character.

    Indexes follow the records' list; `forget(i)` drops record i's texts after it changed.
    """

    def __init__(self) -> None:
        self._indented: dict[int, str] = {}
        self._compact: dict[int, str] = {}

    def forget(self, index: int) -> None:
        self._indented.pop(index, None)
        self._compact.pop(index, None)

    def document(self, header: dict[str, Any], rounds: list[dict[str, Any]]) -> str:
        """`json.dumps({"run": header, "rounds": rounds}, indent=1)`."""
        run = textwrap.indent(json.dumps(header, indent=1), " ")[1:]
        if not rounds:
            return f'{{\n "run": {run},\n "rounds": []\n}}'
        records = ",\n".join(self._text(self._indented, index, record, indent=1) for index, record in enumerate(rounds))
        return f'{{\n "run": {run},\n "rounds": [\n{records}\n ]\n}}'

    def compact(self, rounds: list[dict[str, Any]]) -> str:
        """`json.dumps(rounds)`."""
        return "[" + ", ".join(self._text(self._compact, i, record, None) for i, record in enumerate(rounds)) + "]"

    @staticmethod
    def _text(cache: dict[int, str], index: int, record: dict[str, Any], indent: int | None) -> str:
        if index not in cache:
            text = json.dumps(record, indent=indent)
            cache[index] = textwrap.indent(text, "  ") if indent else text
        return cache[index]

"""TensorBoard sink: event files in the run's folder, one scalar per record key, the config as hyper-parameters.

`tensorboard --logdir outputs` then lists every run by its folder name, and a
comparison's runs (`<out>/runs/<label>-<seed>/`) overlay under `--logdir <out>/runs`.
The writer is PyTorch's `SummaryWriter` (it needs the `tensorboard` package, not
TensorFlow). The hyper-parameters are written into the run's own event file rather
than with `add_hparams`, which would make a second, separate run in a sub-folder.

A resumed run writes into the log folder of the run it continues. Its writer starts
with a restart marker at the checkpointed round (`purge_step`) and logs that round
again: TensorBoard's readers then drop whatever the interrupted process logged from
that round on, so every step appears once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams

from fedapp.tracking import TrackedRun, hyperparameters, round_scalars

LOGDIR = "logdir"
HEADLINE_METRICS = ("central_accuracy", "central_loss", "federated_accuracy", "train_loss")  # HPARAMS columns


class TensorBoardSink:
    """Writes a run's rounds as TensorBoard scalars at step = round."""

    def __init__(self, run: TrackedRun) -> None:
        previous = run.previous.get(LOGDIR)
        self.logdir = Path(previous) if previous else run.folder
        replay = run.history[-1:] if previous else run.history
        restart = replay[0]["round"] if previous and replay else None
        self.writer = SummaryWriter(str(self.logdir), purge_step=restart)
        if not previous:
            for summary in hparams(hyperparameters(run.config), dict.fromkeys(HEADLINE_METRICS, 0.0)):
                self.writer.file_writer.add_summary(summary)
        for record in replay:
            self.log_round(record)

    @property
    def identity(self) -> dict[str, Any]:
        return {LOGDIR: str(self.logdir)}

    def log_round(self, record: dict[str, Any]) -> None:
        for key, value in round_scalars(record).items():
            self.writer.add_scalar(key, value, global_step=record["round"])
        self.writer.flush()

    def finish(self, files: list[Path], completed: bool) -> None:  # noqa: ARG002 (the files stay in the run folder)
        self.writer.close()

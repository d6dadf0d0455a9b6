"""FedDF's choice of what server distillation keeps (Lin et al. 2020; authors' `noise_knowledge_transfer.py`).

The server validates the student on a labelled server split every few steps, keeps a
copy at every strict improvement (`value > best`), stops once `patience` steps have
passed without one, and returns the best copy. With `fallback`, the starting model
(FedDF: the plain average) is validated at step 0 and competes too, so the run keeps
the average whenever no distilled checkpoint beats it; the authors' code does the
same only with `return_best_model_on_val=True`, which is off in their commands.

The torch loop lives in the app (`fedapp/distillation.py`); this class only decides.
"""

from __future__ import annotations

from dataclasses import dataclass

START = 0
"""The step of the starting model (before any distillation)."""


@dataclass
class ValidationChoice:
    """Tracks validation accuracies during one distillation and says which checkpoint to keep."""

    patience: int
    fallback: bool
    best_accuracy: float = float("-inf")
    best_step: int | None = None
    start_accuracy: float | None = None

    def offer(self, step: int, accuracy: float) -> bool:
        """Record the accuracy of the checkpoint after `step` steps; True if it is the new best (keep a copy).

        Step `START` is the starting model: it only becomes a candidate with `fallback`.
        """
        if step == START:
            self.start_accuracy = accuracy
            if not self.fallback:
                return False
        if accuracy > self.best_accuracy:
            self.best_accuracy, self.best_step = accuracy, step
            return True
        return False

    def exhausted(self, step: int) -> bool:
        """True once `patience` steps have passed since the best checkpoint (early stopping)."""
        return self.best_step is not None and step - self.best_step >= self.patience

    @property
    def fell_back(self) -> bool:
        """True when the starting model is kept: no distilled checkpoint beat it on validation."""
        return self.best_step == START

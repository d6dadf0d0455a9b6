"""Server-side knowledge distillation, as FedDF's authors run it (`strategies.distiller.Distiller`).

The server owns a model of the run's architecture (`model`), the public slice of the
pool (FedMD's alignment data, with its labels for scoring a consensus), the
distillation data for FedDF (the public slice, or every training sample of
`distill-dataset`) and a labelled server validation split (`distill-validation-size`
samples after the public slice, never given to a client).

One distillation (the authors' `NoiseKTSolver`, `noise_knowledge_transfer.py`): a new
Adam optimiser (`distill-learning-rate`) with a cosine schedule over `distill-steps`,
batches of `distill-batch-size` drawn from the data in fresh random orders, the KL
divergence to the teacher's softmax at `distill-temperature`, gradient norm clipped
to 5; every `distill-eval-every` steps (and after the last) the student is validated
and `strategies.validation_choice.ValidationChoice` decides what to keep, when to stop
early (`distill-patience`) and whether the starting model stays (`distill-fallback`).
Without a validation split the last step is kept. The teacher's logits are computed
once per distillation for the samples the schedule draws (the data is not augmented,
so this equals the authors' per-batch teacher passes).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch

from fedapp.config import RunConfig
from fedapp.data import (
    DataSpec,
    SourceSpec,
    data_source,
    load_public_split,
    load_server_validation,
    load_source,
    load_unlabelled_features,
    run_schema,
)
from fedapp.device import compute_device
from fedapp.evaluation import run_model
from fedapp.training import batch_schedule, evaluate, predict_logits
from strategies.arrays import Arrays
from strategies.distiller import Distillation
from strategies.losses import distillation_loss, soft_labels
from strategies.seeding import torch_generator
from strategies.validation_choice import START, ValidationChoice

GRADIENT_CLIP_NORM = 5.0
"""FedDF's `clip_grad_norm_(student, 5)`."""


class ServerDistiller:
    """Distils a teacher into a model of the server's architecture, validated on a labelled server split."""

    def __init__(self, config: RunConfig) -> None:
        schema = run_schema(config)
        self.model = run_model(config, schema)
        self.num_classes = schema.num_classes
        spec = DataSpec.from_config(config)
        self.public = load_public_split(spec)
        self.validation = load_server_validation(spec)
        self.data_name = config.distill_dataset or "the public slice"
        self.data = self.public.features if not config.distill_dataset else _other_data(config, schema.input_shape)
        self.config = config
        self.device = compute_device()

    @property
    def public_size(self) -> int:
        """Number of samples in the public set."""
        return len(self.public)

    def public_labels(self) -> np.ndarray:
        """The public slice's labels (known here because it is carved from the labelled pool)."""
        return self.public.labels.numpy()

    def describe(self) -> str:
        """The distillation settings in one line."""
        c = self.config
        validation = (
            f"validated every {c.distill_eval_every} steps on {len(self.validation)} labelled samples, "
            f"patience {c.distill_patience}, fallback {'on' if c.distill_fallback else 'off'}"
            if len(self.validation)
            else "no validation (last step kept)"
        )
        return (
            f"up to {c.distill_steps} Adam steps (lr {c.distill_learning_rate}, cosine) of batch "
            f"{c.distill_batch_size} at T={c.distill_temperature} on {self.data_name}; {validation}"
        )

    def distil_ensemble(self, student: Arrays, members: list[Arrays], server_round: int) -> Distillation:
        """FedDF: fit `student` to softmax(uniform mean of the members' logits / T) on the distillation data."""
        schedule = self._schedule(len(self.data), server_round, "ensemble")
        drawn = torch.unique(torch.cat(schedule))
        logits = torch.zeros(len(self.data), self.num_classes)
        features = self.data[drawn]
        logits[drawn] = torch.stack([predict_logits(self._load(m), features, self.device) for m in members]).mean(0)
        scored = {}
        if not self.config.distill_dataset:
            labels = self.public.labels[drawn]
            scored["consensus_accuracy"] = float((logits[drawn].argmax(1) == labels).float().mean())
        result = self._distil(student, self.data, soft_labels(logits, self.config.distill_temperature), schedule)
        return Distillation(result.arrays, {**result.metrics, **scored})

    def distil_logits(
        self, student: Arrays, logits: np.ndarray, samples: np.ndarray, server_round: int
    ) -> Distillation:
        """Fit `student` to softmax(`logits` / T), the teacher's logits on public samples `samples`."""
        teacher = soft_labels(torch.from_numpy(np.asarray(logits, dtype=np.float32)), self.config.distill_temperature)
        schedule = self._schedule(len(samples), server_round, "consensus")
        return self._distil(student, self.public.features[torch.from_numpy(samples)], teacher, schedule)

    def _schedule(self, num_samples: int, server_round: int, purpose: str) -> list[torch.Tensor]:
        generator = torch_generator(self.config.seed, "server-distill", purpose, server_round)
        return batch_schedule(num_samples, self.config.distill_batch_size, self.config.distill_steps, generator)

    def _load(self, arrays: Arrays) -> torch.nn.Module:
        self.model.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in arrays.items()})
        return self.model

    def _distil(
        self, student: Arrays, features: torch.Tensor, teacher: torch.Tensor, schedule: list[torch.Tensor]
    ) -> Distillation:
        """Run the schedule's steps from `student`, validating as configured; return what is kept."""
        started = time.monotonic()
        c = self.config
        model = self._load(student).to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=c.distill_learning_rate)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=c.distill_steps)
        choice = ValidationChoice(patience=c.distill_patience, fallback=c.distill_fallback)
        validating = len(self.validation) > 0
        best = self._offer(choice, START, model) if validating else None
        features, teacher = features.to(self.device), teacher.to(self.device)
        steps = 0
        for steps, batch in enumerate(schedule, start=1):
            model.train()
            optimizer.zero_grad(set_to_none=True)
            index = batch.to(self.device)
            loss = distillation_loss(model(features[index]), teacher[index], c.distill_temperature)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), GRADIENT_CLIP_NORM)
            optimizer.step()
            cosine.step()
            if validating and (steps % c.distill_eval_every == 0 or steps == len(schedule)):
                best = self._offer(choice, steps, model) or best
                if choice.exhausted(steps):
                    break
        metrics = {"distill_steps": float(steps), "distill_seconds": time.monotonic() - started}
        if validating:
            if best is not None:
                model.load_state_dict(best)
            metrics.update(_validation_figures(choice))
        return Distillation({k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}, metrics)

    def _offer(self, choice: ValidationChoice, step: int, model: torch.nn.Module) -> dict[str, torch.Tensor] | None:
        """Validate `model` after `step` steps; a copy of its weights if it is the new best, else None."""
        accuracy = evaluate(model, self.validation, self.device)["accuracy"]
        return copy.deepcopy(model.state_dict()) if choice.offer(step, accuracy) else None


def _validation_figures(choice: ValidationChoice) -> dict[str, float]:
    """The round record's view of a validated distillation."""
    return {
        "distill_validation_start": float(choice.start_accuracy or 0.0),
        "distill_validation_best": float(choice.best_accuracy),
        "distill_best_step": float(choice.best_step or 0),
        "distill_fell_back": float(choice.fell_back),
    }


def _other_data(config: RunConfig, shape: tuple[int, ...]) -> torch.Tensor:
    """Every training sample of `distill-dataset`, checked to fit the run's model."""
    other = SourceSpec(name=config.distill_dataset, image_size=config.image_size)
    other_shape = load_source(other).schema.input_shape
    if tuple(other_shape) != tuple(shape):
        raise ValueError(
            f"run-config key 'distill-dataset' = {config.distill_dataset!r} has inputs shaped {other_shape}; "
            f"allowed: a dataset shaped like {config.dataset!r}, {shape}"
        )
    return load_unlabelled_features(other, data_source(config))

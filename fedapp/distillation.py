"""Server-side knowledge distillation on the unlabelled public set (FedDF, federated distillation).

fedapp's `strategies.distiller.Distiller`: the server owns a model of the run's
architecture (`model`) and the public slice of the pool (features only). It can turn
client models into ensemble soft labels on the public set, and distil soft labels
into its model. The torch work is `fedapp.training`;
this module only binds it to the run's model, public set, temperature and seed.
"""

from __future__ import annotations

import numpy as np
import torch

from fedapp.config import RunConfig
from fedapp.data import DataSpec, load_public_features, run_schema
from fedapp.device import compute_device
from fedapp.evaluation import run_model
from fedapp.training import fit_soft_labels
from strategies.arrays import Arrays
from strategies.losses import soft_labels
from strategies.seeding import torch_generator


class ServerDistiller:
    """Distils soft labels into the server's model on the public set."""

    def __init__(self, config: RunConfig) -> None:
        self.model = run_model(config, run_schema(config))
        self.public = load_public_features(DataSpec.from_config(config))
        self.temperature = config.distill_temperature
        self.epochs = config.distill_epochs
        self.learning_rate = config.distill_learning_rate
        self.batch_size = config.batch_size
        self.seed = config.seed
        self.device = compute_device()

    @property
    def public_size(self) -> int:
        """Number of samples in the public set."""
        return len(self.public)

    def describe(self) -> str:
        """The distillation settings in one line."""
        return (
            f"distil on {self.public_size} public samples, T={self.temperature}, "
            f"{self.epochs} epochs, Adam lr={self.learning_rate}"
        )

    def _load(self, arrays: Arrays) -> torch.nn.Module:
        self.model.load_state_dict({key: torch.from_numpy(np.array(value)) for key, value in arrays.items()})
        return self.model

    @torch.no_grad()
    def ensemble_soft_labels(self, members: list[Arrays]) -> torch.Tensor:
        """FedDF's teacher: softmax(mean of the members' logits / T) on the public set."""
        self.model.to(self.device).eval()
        features = self.public.to(self.device)
        logits = torch.stack([self._load(member)(features) for member in members]).mean(dim=0)
        return soft_labels(logits, self.temperature).cpu()

    def distil(self, student: Arrays, targets: torch.Tensor, server_round: int) -> Arrays:
        """Fit `student` (weights of the server's architecture) to `targets`; return the new weights."""
        model = self._load(student)
        fit_soft_labels(
            model,
            self.public,
            targets,
            epochs=self.epochs,
            batch_size=self.batch_size,
            learning_rate=self.learning_rate,
            temperature=self.temperature,
            generator=torch_generator(self.seed, "server-distill", server_round),
            device=self.device,
        )
        return {key: value.detach().cpu().numpy() for key, value in model.state_dict().items()}

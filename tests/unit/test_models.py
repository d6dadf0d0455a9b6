"""The FedAvg paper's models: parameter counts, output shapes, seeded initialization."""

from __future__ import annotations

import pytest
import torch

from fedapp.models import build_model, count_parameters


@pytest.mark.parametrize(("name", "parameters"), [("cnn", 1_663_370), ("2nn", 199_210), ("logreg", 7_850)])
def test_parameter_counts_match_the_papers(name: str, parameters: int) -> None:
    assert count_parameters(build_model(name, (1, 28, 28), 10, seed=0)) == parameters


@pytest.mark.parametrize("name", ["cnn", "2nn", "logreg"])
def test_forward_gives_one_logit_per_class(name: str) -> None:
    model = build_model(name, (1, 28, 28), 10, seed=0)
    assert model(torch.zeros(5, 1, 28, 28)).shape == (5, 10)


def test_initialization_depends_on_seed_only() -> None:
    first, again, other = (build_model("cnn", (1, 28, 28), 10, seed=s).state_dict() for s in (3, 3, 4))
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
    torch.manual_seed(123)
    state = torch.random.get_rng_state()
    build_model("2nn", (1, 28, 28), 10, seed=0)
    assert torch.equal(state, torch.random.get_rng_state()), "building a model must not disturb the global RNG"


def test_cnn_rejects_inputs_it_cannot_take() -> None:
    with pytest.raises(ValueError, match="1x28x28"):
        build_model("cnn", (60,), 10, seed=0)
    assert build_model("logreg", (60,), 10, seed=0)(torch.zeros(2, 60)).shape == (2, 10)

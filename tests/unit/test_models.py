"""The FedAvg paper's models: parameter counts, output shapes, seeded initialization."""

from __future__ import annotations

import pytest
import torch

from fedapp.models import ModelError, build_model, check_model, count_parameters


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
    with pytest.raises(ModelError, match=r"takes images .* gives 60 features; allowed for tables: mlp, 2nn, logreg"):
        build_model("cnn", (60,), 10, seed=0)
    with pytest.raises(ModelError, match="needs 1x28x28 inputs; this dataset gives 3x32x32; allowed: resnet8"):
        build_model("cnn", (3, 32, 32), 10, seed=0)
    assert build_model("logreg", (60,), 10, seed=0)(torch.zeros(2, 60)).shape == (2, 10)


def test_resnet8_is_fedddfs_cifar_model() -> None:
    model = build_model("resnet8", (3, 32, 32), 10, seed=0)
    assert count_parameters(model) == 78_042
    assert model(torch.zeros(4, 3, 32, 32)).shape == (4, 10)
    check_model("resnet8", (1, 28, 28), 62)


def test_resnet18_is_adapted_to_small_images() -> None:
    model = build_model("resnet18", (3, 16, 16), 10, seed=0)
    assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1)
    assert model(torch.zeros(2, 3, 16, 16)).shape == (2, 10)
    assert 11_000_000 < count_parameters(model) < 11_300_000


def test_mlp_takes_any_width_and_the_regression_presets_network_is_10_5_1() -> None:
    model = build_model("mlp", (10,), 1, seed=0, hidden_sizes=(5,))
    assert count_parameters(model) == 10 * 5 + 5 + 5 * 1 + 1
    assert model(torch.zeros(3, 10)).shape == (3, 1)
    assert count_parameters(build_model("mlp", (4,), 3, seed=0, hidden_sizes=())) == 15


def test_a_users_factory_is_imported_and_seeded_like_the_others() -> None:
    first = build_model("usermodels.example:small_cnn", (3, 16, 16), 10, seed=1)
    again = build_model("usermodels.example:small_cnn", (3, 16, 16), 10, seed=1)
    assert all(torch.equal(a, b) for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True))
    check_model("usermodels.example:small_cnn", (3, 16, 16), 10)
    check_model("usermodels.example:linear", (10,), 1)


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("usermodels.missing:build", (3, 8, 8), "cannot be imported \\(ModuleNotFoundError: No module named"),
        ("usermodels.example:absent", (3, 8, 8), "cannot be imported \\(AttributeError"),
        ("usermodels.example:small_cnn", (10,), "failed to build for inputs 10 with 2 outputs"),
        ("usermodels.example:linear", (3, 8, 8), None),
    ],
)
def test_a_factory_that_does_not_import_or_fit_is_one_line(
    name: str, shape: tuple[int, ...], message: str | None
) -> None:
    if message is None:
        check_model(name, shape, 2)
        return
    with pytest.raises(ModelError, match=message) as caught:
        check_model(name, shape, 2)
    assert "\n" not in str(caught.value) and "allowed:" in str(caught.value)


def test_check_model_refuses_a_model_whose_outputs_do_not_fit() -> None:
    with pytest.raises(ModelError, match=r"gives outputs of shape \(2, 4\) for 2 samples; allowed: \(2, 3\)"):
        check_model("tests.factories:one_output_too_many", (5,), 3)
    with pytest.raises(ModelError, match=r"returned a tuple, not a torch\.nn\.Module"):
        check_model("tests.factories:not_a_module", (5,), 3)

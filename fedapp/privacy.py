"""The app's side of differential privacy: what the DP mechanism and the sampler get from the run.

`strategies/dp.py` and `strategies/sampling.py` know nothing of fedapp; this module
hands them what only the app knows:

- the client sampler (`client-sampling`, `fraction-train`, `min-train-nodes`), whose
  draws are seeded from the run seed, except with DP on among nodes that train on
  their own data (a deployment), or nodes the app cannot see (a plain Flower
  ServerApp): there the sample must stay secret for amplification by sampling to hold;
- the noise source: secret (OS entropy) unless `dp-noise = "seeded-insecure"`
  (`strategy_factory.py` builds the DP mechanism around the two);
- checks that need the connected nodes, run before the first round: seeded noise is
  refused among nodes with their own data, and adaptive clipping's automatic count
  noise (expected clients / 20) must exceed z / 2.
"""

from __future__ import annotations

from collections.abc import Callable

from fedapp.config import AUTO_COUNT_NOISE, ConfigError, RunConfig, refuse_seeded_noise
from strategies.adaptive_clipping import default_count_stddev
from strategies.noise import SEEDED_INSECURE, NoiseSource, secret_noise, seeded_noise
from strategies.sampling import ClientSampler, SamplingRng, secret_sampling, seeded_sampling

OwnDataNodes = Callable[[], int]
"""How many connected nodes train on their own data (None: the app cannot tell)."""


def client_sampler(config: RunConfig, own_data_nodes: OwnDataNodes | None) -> ClientSampler:
    """The run's client sampler; secret draws when DP is on and the nodes may hold their own data."""
    return ClientSampler(
        config.client_sampling, config.fraction_train, config.min_train_nodes, _sampling_rng(config, own_data_nodes)
    )


def _sampling_rng(config: RunConfig, own_data_nodes: OwnDataNodes | None) -> SamplingRng:
    if config.dp == "none":
        return seeded_sampling(config.seed)
    seeded, secret = seeded_sampling(config.seed), secret_sampling()
    if own_data_nodes is None:
        return secret
    return lambda server_round: secret(server_round) if own_data_nodes() else seeded(server_round)


def secret_sampling_in_use(config: RunConfig, own_data_nodes: int) -> bool:
    """Whether the run's client sample is drawn from OS entropy with `own_data_nodes` such nodes."""
    return config.dp != "none" and own_data_nodes > 0


def noise_source(config: RunConfig) -> NoiseSource:
    """Secret noise, or seeded noise when `dp-noise` opts into it (experiments only: not private)."""
    return seeded_noise(config.seed) if config.dp_noise == SEEDED_INSECURE else secret_noise()


def check_nodes(config: RunConfig, num_nodes: int, own_data_nodes: int) -> None:
    """Refuse DP settings these nodes cannot run safely; called before the first round.

    Raises
    ------
    ConfigError
        Seeded noise among nodes with their own data, or adaptive clipping whose
        automatic count noise (expected clients / 20) is not above z / 2.
    """
    refuse_seeded_noise(config, own_data_nodes)
    if config.dp != "server-adaptive" or config.dp_count_noise_stddev != AUTO_COUNT_NOISE:
        return
    expected = client_sampler(config, None).expected_clients(num_nodes)
    count_noise = default_count_stddev(expected)
    if config.dp_noise_multiplier >= 2 * count_noise:
        raise ConfigError(
            f"run-config key 'dp-noise-multiplier' = {config.dp_noise_multiplier} is too large for adaptive "
            f"clipping with {expected:g} expected clients of {num_nodes} nodes (automatic count noise "
            f"{count_noise:g}); allowed: < {2 * count_noise:g}, or set dp-count-noise-stddev > "
            f"{config.dp_noise_multiplier / 2:g}"
        )

"""Learning-rate schedule: multiplicative decay per round (the FedAvg paper's CIFAR runs)."""


def round_learning_rate(base: float, decay: float, server_round: int) -> float:
    """The client learning rate of round `server_round` (1-based): base * decay^(round - 1)."""
    return base * decay ** (server_round - 1)

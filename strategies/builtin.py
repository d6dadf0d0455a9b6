"""Flower's own strategies, selectable by name beside fedapp's.

They run with Flower's default hyperparameters (e.g. FedAdam eta=0.1, tau=1e-3;
FedTrimmedAvg beta=0.2; Krum with no assumed malicious nodes) and fedapp's sampling
settings; fedapp's loop still seeds their sampling, screens replies, sets the
round's learning rate and measures traffic.
"""

from __future__ import annotations

from flwr.serverapp.strategy import FedAdagrad, FedAdam, FedMedian, FedTrimmedAvg, FedYogi, Krum, Strategy

BUILTINS: dict[str, tuple[type[Strategy], str]] = {
    "fedadam": (FedAdam, "Flower's FedAdam (Reddi et al. 2021): server-side Adam on the averaged update"),
    "fedyogi": (FedYogi, "Flower's FedYogi (Reddi et al. 2021): server-side Yogi"),
    "fedadagrad": (FedAdagrad, "Flower's FedAdagrad (Reddi et al. 2021): server-side Adagrad"),
    "fedmedian": (FedMedian, "Flower's FedMedian (Yin et al. 2018): coordinate-wise median"),
    "fedtrimmedavg": (FedTrimmedAvg, "Flower's FedTrimmedAvg (Yin et al. 2018): coordinate-wise trimmed mean"),
    "krum": (Krum, "Flower's Krum (Blanchard et al. 2017): the update closest to its neighbours"),
}

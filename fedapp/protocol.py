"""fedapp's own messages beyond the strategies' protocol (`strategies/protocol.py`).

The ServerApp asks each new node who it is with a `query` message (`DESCRIBE`),
answered under `NODE` with its stable key, its model architecture and how many
shares of the run's dataset its data is one of; the federation loop orders and
samples nodes by those keys (`nodes.py`). A node keeps its own model between
rounds in its Flower `Context.state` under `LOCAL_MODEL` (federated distillation),
and on its disk (`node_state.py`) its control variate (SCAFFOLD, under the
protocol's `CONTROL_VARIATE`) or its personal arrays (`PERSONAL_STATE`: FedBN's
BatchNorm layers, Ditto's personal model). A node's evaluation reply carries the
means `training.evaluate` returns under the keys of `EVALUATION_KEYS`. A train message
may also ask a node to evaluate the weights it brings before training
(`EVALUATE_RECEIVED`), answered under `EVALUATION` beside the training result.
"""

from strategies.protocol import (
    EVAL_ACCURACY,
    EVAL_LOSS,
    EVAL_MAE,
    EVAL_MSE,
    EVAL_TARGET_MEAN,
    EVAL_TARGET_SQUARE_MEAN,
)

DESCRIBE = "query"
NODE = "node"

# Keys inside NODE (client -> server, reply to DESCRIBE)
NODE_KEY = "key"
NODE_MODEL = "model"
NODE_PARTITIONS = "partitions"  # num-partitions of the node's share, 0 for a node with its own data
NODE_PARTITION_ID = "partition-id"  # which share it holds, -1 for a node with its own data

# Federated evaluation riding on training (`federated-evaluation = "with-train"`): a train
# config flag asking the node to evaluate the global model it received before training,
# and the reply's ConfigRecord with the result (num-examples and the `EVALUATION_KEYS` means)
EVALUATE_RECEIVED = "evaluate-received"
EVALUATION = "evaluation"

# Key inside a node's Context.state: its own model (federated distillation)
LOCAL_MODEL = "local-model"

# Evaluation means (`training.evaluate`, by task) -> their keys in an evaluation reply's MetricRecord
EVALUATION_KEYS = {
    "loss": EVAL_LOSS,
    "accuracy": EVAL_ACCURACY,
    "mse": EVAL_MSE,
    "mae": EVAL_MAE,
    "target_mean": EVAL_TARGET_MEAN,
    "target_square_mean": EVAL_TARGET_SQUARE_MEAN,
}

# Name of a node's personal arrays in its state on disk (FedBN, Ditto)
PERSONAL_STATE = "personal"

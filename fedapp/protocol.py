"""fedapp's own messages beyond the strategies' protocol (`strategies/protocol.py`).

The ServerApp asks each new node who it is with a `query` message (`DESCRIBE`),
answered under `NODE` with its stable key, its model architecture and how many
shares of the run's dataset its data is one of; the federation loop orders and
samples nodes by those keys (`nodes.py`). A train message may also ask a node to
evaluate the weights it brings before training (`EVALUATE_RECEIVED`), answered under
`EVALUATION` beside the training result. A node keeps its own model between
rounds in its Flower `Context.state` under `LOCAL_MODEL` (federated distillation).
"""

DESCRIBE = "query"
NODE = "node"

# Keys inside NODE (client -> server, reply to DESCRIBE)
NODE_KEY = "key"
NODE_MODEL = "model"
NODE_PARTITIONS = "partitions"  # num-partitions of the node's share, 0 for a node with its own data

# Federated evaluation riding on training (`federated-evaluation = "with-train"`): a train
# config flag asking the node to evaluate the global model it received before training,
# and the reply's ConfigRecord with the result (num-examples, eval-loss, eval-accuracy)
EVALUATE_RECEIVED = "evaluate-received"
EVALUATION = "evaluation"

# Key inside a node's Context.state: its own model (federated distillation)
LOCAL_MODEL = "local-model"

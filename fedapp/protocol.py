"""The wire protocol between fedapp's ServerApp and ClientApp: message types and record keys.

Both sides import these names, so a key is spelled once. A train message carries the
global weights under `ARRAYS` and the round's instructions under `CONFIG`; a reply
carries its result under `ARRAYS` and its numbers under `METRICS`.

Message types (Flower routes `<category>.<action>` to `@app.<category>("<action>")`):
- `train`: local SGD from the global weights, reply with the new weights;
- `train.gradient`: reply with the full-batch gradient at the global weights (FedSGD);
- `train.distill`: digest consensus soft labels, train, reply with soft labels
  on the public set (federated distillation);
- `evaluate`: evaluate the global weights on the node's validation split;
- `evaluate.local`: evaluate the node's own model (federated distillation);
- `query`: describe the node (its stable key and model), used for ordering and sampling.
"""

TRAIN = "train"
TRAIN_GRADIENT = "train.gradient"
TRAIN_DISTILL = "train.distill"
EVALUATE = "evaluate"
EVALUATE_LOCAL = "evaluate.local"
DESCRIBE = "query"

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
NODE = "node"
CONSENSUS = "consensus"

# Keys inside CONFIG (server -> client)
SERVER_ROUND = "server-round"
LEARNING_RATE = "lr"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal-mu"

# Keys inside METRICS (client -> server)
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"

# Keys inside NODE (client -> server, reply to DESCRIBE)
NODE_KEY = "key"
NODE_MODEL = "model"
NODE_PARTITIONS = "partitions"  # num-partitions of the node's share, 0 for a node with its own data

# Keys of the arrays in a federated-distillation exchange
SOFT_LABELS = "soft-labels"

# Key inside a node's Context.state: its own model (federated distillation)
LOCAL_MODEL = "local-model"

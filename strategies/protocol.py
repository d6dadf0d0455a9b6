"""The wire protocol between our strategies and a ClientApp: message types and record keys.

A strategy and the ClientApp that serves it must spell these the same way, so they
live here, beside the strategies, and fedapp's ClientApp imports them. A train
message carries the global weights and the round's instructions under the
strategy's `arrayrecord_key` and `configrecord_key` (Flower's "arrays" and
"config"); a reply carries one `ArrayRecord` with its result and one `MetricRecord`
with its numbers.

Message types (Flower routes `<category>.<action>` to `@app.<category>("<action>")`):
- `train`: local SGD from the global weights, reply with the new weights;
- `train.gradient`: reply with the full-batch gradient at the global weights (FedSGD);
- `train.distill`: digest consensus soft labels, train, reply with soft labels
  on the public set (federated distillation);
- `evaluate`: evaluate the global weights on the node's validation split;
- `evaluate.local`: evaluate the node's own model (federated distillation).
"""

TRAIN_GRADIENT = "train.gradient"
TRAIN_DISTILL = "train.distill"
EVALUATE_LOCAL = "evaluate.local"

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
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
EVAL_MSE = "eval-mse"  # regression: means in the target's units, which pool over nodes by example weighting
EVAL_MAE = "eval-mae"
EVAL_TARGET_MEAN = "eval-target-mean"
EVAL_TARGET_SQUARE_MEAN = "eval-target-square-mean"

# Keys of the arrays in a federated-distillation exchange
SOFT_LABELS = "soft-labels"

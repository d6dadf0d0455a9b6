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
- `train.distill`: FedMD: digest the consensus logits on the public set, train on
  private data, reply with the own model's logits on this round's public subset;
- `train.fd`: FD: train on private data with the per-label teacher as a regulariser,
  reply with the per-label average logits and the samples per label;
- `evaluate`: evaluate the global weights on the node's validation split;
- `evaluate.local`: evaluate the node's own model (federated distillation).

In the federated-distillation replies the node also reports how its own model does
after the round: on its validation split, and, when it holds a share of the run's
dataset, on the run's held-out test set (`TEST_*`).
"""

TRAIN_GRADIENT = "train.gradient"
TRAIN_DISTILL = "train.distill"
TRAIN_LABEL_LOGITS = "train.fd"
EVALUATE_LOCAL = "evaluate.local"

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
CONSENSUS = "consensus"
TEACHER = "teacher"

# Keys inside CONFIG (server -> client)
SERVER_ROUND = "server-round"
LEARNING_RATE = "lr"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal-mu"
CONSENSUS_ROUND = "consensus-round"  # the round whose public subset the consensus covers (FedMD)

# Keys inside METRICS (client -> server)
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
TEST_LOSS = "test-loss"
TEST_ACCURACY = "test-accuracy"
VALIDATION_ACCURACY = "validation-accuracy"

# Keys of the arrays in a federated-distillation exchange
PUBLIC_LOGITS = "public-logits"  # FedMD: logits on the public subset (reply), the consensus (CONSENSUS)
LABEL_LOGITS = "label-logits"  # FD: per-label average logits, labels x classes (reply), the teacher (TEACHER)
LABEL_COUNTS = "label-counts"  # FD: samples per label (reply)
HAS_TEACHER = "has-teacher"  # FD: in TEACHER, 1 for the labels that have a teacher, else 0

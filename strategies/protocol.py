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
- `train.scaffold`: SCAFFOLD's corrected local SGD; the message also carries the
  server's control variate c under `CONTROL_VARIATE`, the reply the new weights and
  the change of the node's own control variate, Delta c_i, under the same name;
- `train.fedbn`: local SGD with the node's own BatchNorm layers (FedBN);
- `train.ditto`: local SGD of the global model and, on the same batches, of the
  node's personal model regularised toward the global one (Ditto);
- `evaluate`: evaluate the global weights on the node's validation split;
- `evaluate.local`: evaluate the node's own model (federated distillation);
- `evaluate.personal`: evaluate the global weights and the node's personal model
  (FedBN, Ditto) on the node's validation split.

In the federated-distillation replies the node also reports how its own model does
after the round: on its validation split, and, when it holds a share of the run's
dataset, on the run's held-out test set (`TEST_*`).

Nodes that keep state between rounds (SCAFFOLD, FedBN, Ditto) are told under which
scope (a run and the runs resuming it) and from which round's state to go on
(`STATE_SCOPE`, `STATE_ROUND`; `strategies/client_state.py`).
"""

TRAIN_GRADIENT = "train.gradient"
TRAIN_DISTILL = "train.distill"
TRAIN_SCAFFOLD = "train.scaffold"
TRAIN_FEDBN = "train.fedbn"
TRAIN_DITTO = "train.ditto"
TRAIN_LABEL_LOGITS = "train.fd"
EVALUATE_LOCAL = "evaluate.local"
EVALUATE_PERSONAL = "evaluate.personal"

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
CONSENSUS = "consensus"
CONTROL_VARIATE = "control-variate"
TEACHER = "teacher"

# Keys inside CONFIG (server -> client)
SERVER_ROUND = "server-round"
LEARNING_RATE = "lr"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal-mu"
DITTO_LAMBDA = "ditto-lambda"
STATE_SCOPE = "state-scope"
STATE_ROUND = "state-round"
CONSENSUS_ROUND = "consensus-round"  # the round whose public subset the consensus covers (FedMD)

# Keys inside METRICS (client -> server)
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
LOCAL_STEPS = "local-steps"
PERSONAL_TRAIN_LOSS = "personal-train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
EVAL_MSE = "eval-mse"  # regression: means in the target's units, which pool over nodes by example weighting
EVAL_MAE = "eval-mae"
EVAL_TARGET_MEAN = "eval-target-mean"
EVAL_TARGET_SQUARE_MEAN = "eval-target-square-mean"
PERSONAL_LOSS = "personal-loss"
PERSONAL_ACCURACY = "personal-accuracy"
TEST_LOSS = "test-loss"
TEST_ACCURACY = "test-accuracy"
VALIDATION_ACCURACY = "validation-accuracy"

# Keys of the arrays in a federated-distillation exchange
PUBLIC_LOGITS = "public-logits"  # FedMD: logits on the public subset (reply), the consensus (CONSENSUS)
LABEL_LOGITS = "label-logits"  # FD: per-label average logits, labels x classes (reply), the teacher (TEACHER)
LABEL_PRESENCE = "label-presence"  # FD: 1 for each label the device holds, else 0 (reply)
HAS_TEACHER = "has-teacher"  # FD: in TEACHER, 1 for the labels that have a teacher, else 0

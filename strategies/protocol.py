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

Nodes that keep state between rounds (SCAFFOLD, FedBN, Ditto) are told under which
scope (a run and the runs resuming it) and from which round's state to go on
(`STATE_SCOPE`, `STATE_ROUND`; `strategies/client_state.py`).
"""

TRAIN_GRADIENT = "train.gradient"
TRAIN_DISTILL = "train.distill"
TRAIN_SCAFFOLD = "train.scaffold"
TRAIN_FEDBN = "train.fedbn"
TRAIN_DITTO = "train.ditto"
EVALUATE_LOCAL = "evaluate.local"
EVALUATE_PERSONAL = "evaluate.personal"

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
CONSENSUS = "consensus"
CONTROL_VARIATE = "control-variate"

# Keys inside CONFIG (server -> client)
SERVER_ROUND = "server-round"
LEARNING_RATE = "lr"
LOCAL_EPOCHS = "local-epochs"
PROXIMAL_MU = "proximal-mu"
DITTO_LAMBDA = "ditto-lambda"
STATE_SCOPE = "state-scope"
STATE_ROUND = "state-round"

# Keys inside METRICS (client -> server)
NUM_EXAMPLES = "num-examples"
TRAIN_LOSS = "train-loss"
LOCAL_STEPS = "local-steps"
PERSONAL_TRAIN_LOSS = "personal-train-loss"
EVAL_LOSS = "eval-loss"
EVAL_ACCURACY = "eval-accuracy"
PERSONAL_LOSS = "personal-loss"
PERSONAL_ACCURACY = "personal-accuracy"

# Keys of the arrays in a federated-distillation exchange
SOFT_LABELS = "soft-labels"

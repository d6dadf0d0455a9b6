"""The client side of `dp = "client-fixed"`: clip a reply's update before it leaves the node.

Why not Flower's `fixedclipping_mod`: in 1.42 it measures every array, BatchNorm's
integer `num_batches_tracked` included, so a few local steps shrank the weights far
below the clipping norm. This uses the server's own `strategies.privacy.clip_update`
(floating-point arrays only). Kept apart from `fedapp.privacy`, which is server-only:
a ClientApp process must not load the server's code (tests/unit/test_layers.py).
"""

from __future__ import annotations

from flwr.app import Message
from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

from strategies.aggregation import difference
from strategies.arrays import reply_arrays, to_numpy, to_record
from strategies.privacy import clip_update
from strategies.protocol import ARRAYS, CONFIG


def clip_reply(message: Message, reply: Message) -> Message:
    """`reply` with its update (its weights minus those `message` sent) clipped to the norm `message` asks for.

    The client side of `dp = "client-fixed"`, with the server's own `clip_update`: only
    the floating-point arrays are measured and scaled. Flower's `fixedclipping_mod`
    (1.42) measures every array, BatchNorm's integer `num_batches_tracked` included, so
    a few local steps shrank the weights far below the clipping norm. A reply within
    the norm goes back unchanged, bit for bit.
    """
    sent = to_numpy(message.content[ARRAYS])
    update = difference(reply_arrays(reply.content), sent)
    clipped = clip_update(update, float(message.content[CONFIG][KEY_CLIPPING_NORM]))  # type: ignore[arg-type]
    if clipped is not update:
        reply.content[ARRAYS] = to_record({key: (sent[key] + clipped[key]).astype(sent[key].dtype) for key in sent})
    return reply

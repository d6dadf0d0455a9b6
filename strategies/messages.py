"""Rebuilding the messages Flower's `configure_*` hooks return, to change their type or content.

Our strategies build a round's messages in `configure_train` (Flower's `FedAvg` for
federated distillation, `strategies/fedavg.py` for the weight-averaging ones), then
adjust them through the public hooks (a gradient request instead of a train request,
fewer epochs for a straggler, a control variate beside the weights) rather than
overriding Flower's private message builder.
"""

from __future__ import annotations

from collections.abc import Mapping

from flwr.app import ArrayRecord, ConfigRecord, Message, RecordDict
from flwr.app.typing import ConfigRecordValues


def readdressed(message: Message, *, content: RecordDict | None = None, message_type: str | None = None) -> Message:
    """A new message to the same node as `message`, with another content and/or message type."""
    return Message(
        content if content is not None else message.content,
        dst_node_id=message.metadata.dst_node_id,
        message_type=message_type or message.metadata.message_type,
    )


def amended(
    message: Message,
    config_key: str,
    config: Mapping[str, ConfigRecordValues],
    *,
    arrays: Mapping[str, ArrayRecord] | None = None,
    message_type: str | None = None,
) -> Message:
    """A new message to the same node with the same records, its config updated with `config`, plus `arrays`.

    The config record is copied (a round's messages share one), the other records are not.
    """
    content = RecordDict(dict(message.content.items()))
    content[config_key] = ConfigRecord({**message.content[config_key], **config})
    for name, record in (arrays or {}).items():
        content[name] = record
    return readdressed(message, content=content, message_type=message_type)

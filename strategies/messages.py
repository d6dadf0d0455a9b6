"""Rebuilding the messages Flower's `configure_*` hooks return, to change their type or content.

Our strategies build a round's messages in `configure_train` (Flower's `FedAvg` for
federated distillation, `strategies/fedavg.py` for the weight-averaging ones), then
adjust them through the public hooks (a gradient request instead of a train request,
fewer epochs for a straggler) rather than overriding Flower's private message builder.
"""

from __future__ import annotations

from flwr.app import Message, RecordDict


def readdressed(message: Message, *, content: RecordDict | None = None, message_type: str | None = None) -> Message:
    """A new message to the same node as `message`, with another content and/or message type."""
    return Message(
        content if content is not None else message.content,
        dst_node_id=message.metadata.dst_node_id,
        message_type=message_type or message.metadata.message_type,
    )

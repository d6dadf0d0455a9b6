"""A node's state between rounds, on its own disk: SCAFFOLD's c_i, FedBN's BatchNorm layers, Ditto's v_k.

The server's strategy tells each message under which scope (a run and the runs that
resume it) and from which round's state the node is to continue
(`strategies/client_state.py` explains that design). Here the node keeps one file per
round it trained in:

    <root>/<scope>/<digest of the node's key>/<name>-<round>.pt

`root` is `$FEDAPP_NODE_STATE_DIR`, else `node-state/` in fedapp's cache folder
(`$FEDAPP_CACHE_DIR`, `$XDG_CACHE_HOME/fedapp` or `~/.cache/fedapp`). A node loads
exactly the round it is told, saves its new state as the current round's file and
deletes its other files of that name but the one it loaded (a run resumed before the
current round was aggregated asks for that one again). So a node holds at most two
files per name and scope. Nothing deletes a scope: remove
`<root>/<scope>` once its run will not be resumed (or extended) any more.

Files are written atomically and read with `weights_only=True` (tensors only).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from logging import WARNING
from pathlib import Path

import torch
from flwr.app import ConfigRecord
from flwr.common import log

from fedapp.atomic import atomic_write
from fedapp.data.cache import cache_dir, cache_key
from strategies.protocol import STATE_ROUND, STATE_SCOPE

STATE_DIR_VARIABLE = "FEDAPP_NODE_STATE_DIR"
SCOPE_PATTERN = re.compile(r"[0-9a-f]{32}")

Tensors = dict[str, torch.Tensor]


def node_state_root() -> Path:
    """Where nodes on this machine keep their state: `$FEDAPP_NODE_STATE_DIR`, else `<cache dir>/node-state`."""
    explicit = os.environ.get(STATE_DIR_VARIABLE)
    return Path(explicit) if explicit else cache_dir() / "node-state"


@dataclass(frozen=True)
class NodeStateStore:
    """One node's state files in one scope, and the round whose state this message continues from."""

    folder: Path
    resume_round: int

    @classmethod
    def for_message(cls, instructions: ConfigRecord, node_key: str) -> NodeStateStore:
        """The store a message's instructions point to, for the node with stable key `node_key`.

        Raises
        ------
        ValueError
            If the scope is not the 32 hex digits a strategy draws (it names a folder).
        """
        scope = str(instructions[STATE_SCOPE])
        if not SCOPE_PATTERN.fullmatch(scope):
            raise ValueError(f"state scope {scope!r} is not 32 lowercase hex digits")
        return cls(node_state_root() / scope / cache_key(node_key), int(instructions[STATE_ROUND]))

    def load(self, name: str) -> Tensors | None:
        """The state `name` saved in the round to continue from; None if there is none (start fresh)."""
        if self.resume_round == 0:
            return None
        path = self._path(name, self.resume_round)
        if not path.exists():
            log(WARNING, "[fedapp] node state %s is gone; this node starts %s afresh", path, name)
            return None
        return torch.load(path, map_location="cpu", weights_only=True)

    def save(self, name: str, server_round: int, tensors: Tensors) -> None:
        """Keep `tensors` as state `name` of `server_round`; delete the older files but the loaded one."""
        path = self._path(name, server_round)
        atomic_write(path, lambda file: torch.save({key: value.detach().cpu() for key, value in tensors.items()}, file))
        keep = {path, self._path(name, self.resume_round)}
        for old in self.folder.glob(f"{name}-*.pt"):
            if old not in keep:
                old.unlink(missing_ok=True)

    def _path(self, name: str, server_round: int) -> Path:
        return self.folder / f"{name}-{server_round}.pt"

"""Test-only fault injection: chosen nodes corrupt their replies after real training.

`-c fault-injection="partition-00001:nan,partition-00002:shape,partition-00003:raise"`
maps node keys (as the server names them) to a fault, applied to every train reply
of that node:

- `nan`: the first array of the reply is filled with NaN;
- `shape`: the first array of the reply gets one extra row (a wrong shape);
- `raise`: the ClientApp raises after training, so the node fails that round;
- `claim`: the reply claims `num-examples = -1` (a broken counter).

(Hostile replies, such as an update scaled by 1e6, are attacks: `fedapp/attacks.py`.)

It is refused unless `FEDAPP_ENABLE_FAULT_INJECTION=1` is set in the environment of
the process reading the run config (the ServerApp, the ClientApps, `python -m sim`),
so that no production run can corrupt its own updates by a stray setting.
"""

from __future__ import annotations

import os

import numpy as np

from strategies.arrays import Arrays

ENABLE_VARIABLE = "FEDAPP_ENABLE_FAULT_INJECTION"
NAN = "nan"
SHAPE = "shape"
RAISE = "raise"
CLAIM = "claim"
FAULT_KINDS = (NAN, SHAPE, RAISE, CLAIM)
BAD_CLAIM = -1
FAULT_RULE = f"'' or comma-separated node-key:fault pairs, fault one of {', '.join(FAULT_KINDS)}"


class InjectedFaultError(RuntimeError):
    """The failure a `raise` fault makes a ClientApp throw."""


def parse_fault_plan(text: str) -> dict[str, str]:
    """Map node keys to faults from `'key:fault,key:fault'` ('' = no faults).

    Raises
    ------
    ValueError
        On an entry that is not `key:fault` with a known fault or a node named twice.
    """
    plan: dict[str, str] = {}
    for entry in filter(None, (part.strip() for part in text.split(","))):
        key, _, kind = entry.rpartition(":")
        if not key or kind not in FAULT_KINDS or key in plan:
            raise ValueError(f"bad fault-injection entry {entry!r}")
        plan[key] = kind
    return plan


def fault_injection_enabled() -> bool:
    """True when this process may inject faults (`FEDAPP_ENABLE_FAULT_INJECTION=1`)."""
    return os.environ.get(ENABLE_VARIABLE) == "1"


def corrupt(arrays: Arrays, kind: str) -> Arrays:
    """`arrays` with fault `kind` (nan or shape) applied to the first array; the input is not changed."""
    corrupted = dict(arrays)
    key, first = next(iter(arrays.items()))
    if kind == NAN:
        corrupted[key] = np.full_like(first, np.nan)
    elif kind == SHAPE:
        corrupted[key] = np.concatenate([first, first[:1]])
    else:
        raise ValueError(f"fault {kind!r} does not corrupt arrays; allowed: {NAN}, {SHAPE}")
    return corrupted

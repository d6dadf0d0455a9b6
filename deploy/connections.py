"""The `flwr` CLI's SuperLink connections, and why one cannot reach its SuperLink.

Connections live in `$FLWR_HOME/config.toml` as `[superlink.<name>]` entries
(`deploy/add-connection.sh` writes them). When a command fails, Flower prints
"Connection to the SuperLink is unavailable" whatever the cause: nothing listens,
the SuperLink serves TLS and the connection is insecure (or the other way round), or
its certificate does not verify against the connection's CA. `diagnose` probes the
SuperLink's address each way (`deploy/tls_probe.py`) and names the cause it finds; `execute_on` runs
the app on a deployment's connection and adds that cause to Flower's error.
"""

from __future__ import annotations

import os
import tomllib
from typing import Any

from deploy.tls_probe import PLAIN, serves, verify_error
from sim.flwr_cli import FlwrCommandError
from sim.run import RunOutcome, RunRequest, execute
from sim.superlink import flwr_home


def config_file() -> str:
    """The `flwr` CLI's configuration file."""
    return str(flwr_home() / "config.toml")


def connection_settings(name: str) -> dict[str, Any]:
    """The settings of connection `name` (empty if there is no such connection)."""
    try:
        with open(config_file(), "rb") as file:
            return dict(tomllib.load(file).get("superlink", {}).get(name, {}))
    except FileNotFoundError:
        return {}


def diagnose(name: str) -> str:  # noqa: PLR0911 (one answer per cause, in the order probed)
    """One sentence on why connection `name` cannot reach its SuperLink (or that it can)."""
    settings = connection_settings(name)
    address = settings.get("address")
    if not isinstance(address, str) or address.startswith(":"):
        return f"connection {name!r} in {config_file()} has no network address to probe"
    served = serves(address)
    if served is None:
        return f"nothing answers at {address}: is the SuperLink running, and on that host and port?"
    if settings.get("insecure"):
        if served == PLAIN:
            return f"the SuperLink at {address} answers over plain HTTP; the failure is not a connection problem"
        return (
            f"the SuperLink at {address} serves TLS, but connection {name!r} is insecure: in {config_file()} "
            f'replace "insecure = true" with root-certificates = "/path/to/ca.crt" (the CA that signed its certificate)'
        )
    if served == PLAIN:
        return (
            f"the SuperLink at {address} runs without TLS (--insecure), but connection {name!r} expects TLS: "
            f"set insecure = true in {config_file()}, or start the SuperLink with its certificate"
        )
    certificates = settings.get("root-certificates")
    if certificates and not os.path.isfile(certificates):
        return f"connection {name!r} names root-certificates {certificates!r}, which does not exist"
    if verify_error(address, certificates) is None:
        return (
            f"the SuperLink at {address} answers and its certificate verifies; the failure is not a connection problem"
        )
    return (
        f"the SuperLink at {address} serves TLS, but its certificate does not verify against "
        f"{certificates or 'the system CAs'}: set root-certificates to the ca.crt that signed it, and reach it "
        "by a host name or IP address listed in its certificate (deploy/make-certs.sh --hosts)"
    )


def execute_on(request: RunRequest, connection: str, label: str = "") -> RunOutcome:
    """Run `request` on the SuperLink of `connection`; an unreachable SuperLink's error names the likely cause."""
    try:
        return execute(request, label, connection)
    except FlwrCommandError as error:
        if not error.unreachable:
            raise
        raise FlwrCommandError(f"{error}\nlikely cause: {diagnose(connection)}") from None

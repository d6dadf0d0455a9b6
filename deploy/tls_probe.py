"""Probe a SuperLink's address: does it answer, over TLS or plain HTTP, and does its certificate verify?

Flower reports a TLS mismatch badly: a SuperNode started `--insecure` against a TLS
SuperLink retries "Connection attempt failed" until it gives up, and the `flwr` CLI
says only "Connection to the SuperLink is unavailable". These probes name the cause.
`python -m deploy.tls_probe` is `deploy/start-supernode.sh`'s pre-flight check: it
imports only `httpx` and `ssl`, so a node's start is not slowed by fedapp's modules.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import sys
from urllib.parse import urlsplit

import httpx

PROBE_SECONDS = 3.0
TLS = "tls"
PLAIN = "plain"
# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_IP_ADDRESS_MISMATCH (Python's ssl has no names for them).
NAME_MISMATCH = (62, 64)


def serves(address: str) -> str | None:
    """`TLS` or `PLAIN` by what the server at `address` (host:port) answers; None if nothing answers."""
    if _answers(f"https://{address}/health"):
        return TLS
    if _answers(f"http://{address}/health"):
        return PLAIN
    return None


def _answers(url: str) -> bool:
    """True if `url` answers at all (any HTTP status), without checking its certificate."""
    try:
        httpx.get(url, verify=False, timeout=PROBE_SECONDS)  # noqa: S501 (asks only whether TLS answers)
    except httpx.HTTPError:
        return False
    return True


def verify_error(address: str, certificates: str | None) -> OSError | None:
    """Why a TLS handshake with `address` fails when verifying against `certificates` (a CA file; None: system CAs).

    None when its certificate verifies for that host name; an `ssl.SSLCertVerificationError`
    when it does not; another `OSError` when the handshake fails otherwise.
    """
    parts = urlsplit(f"//{address}")
    host, port = parts.hostname or "", parts.port or 443
    context = ssl.create_default_context(cafile=certificates)
    try:
        with (
            socket.create_connection((host, port), timeout=PROBE_SECONDS) as raw,
            context.wrap_socket(raw, server_hostname=host),
        ):
            return None
    except OSError as error:  # ssl.SSLError is one
        return error


def verify_problem(address: str, certificates: str | None) -> str | None:
    """One clause on why the certificate at `address` does not verify against `certificates`; None if it does."""
    error = verify_error(address, certificates)
    if error is None:
        return None
    if not isinstance(error, ssl.SSLCertVerificationError):
        return f"the TLS handshake failed: {error}"
    host = urlsplit(f"//{address}").hostname
    if error.verify_code in NAME_MISMATCH:
        return (
            f"certificate verify failed: the SuperLink's certificate does not name {host!r}; reach it by a "
            "name or address listed in it (deploy/make-certs.sh --hosts)"
        )
    return (
        f"certificate verify failed: the SuperLink's certificate is not signed by {certificates or 'the system CAs'} "
        f"({error.verify_message}); use the federation's ca.crt from deploy/make-certs.sh"
    )


def supernode_preflight(address: str, certificates: str | None, insecure: bool) -> tuple[bool, str]:
    """Whether a SuperNode with these TLS settings can talk to the SuperLink at `address`, and one line saying so.

    Returns (False, cause) for a mismatch the node would retry forever or fail on obscurely:
    insecure against TLS, TLS against plain HTTP, a certificate that does not verify.
    Nothing listening is not a mismatch (the SuperLink may start later): (True, that news).
    """
    served = serves(address)
    if served is None:
        return True, f"nothing answers at {address} yet; the SuperNode keeps retrying until a SuperLink listens there"
    if insecure:
        if served == TLS:
            return False, (
                f"the SuperLink at {address} speaks TLS; pass --ca with the federation's ca.crt (not --insecure)"
            )
        return True, f"the SuperLink at {address} answers over plain HTTP"
    if served == PLAIN:
        return False, (
            f"the SuperLink at {address} runs without TLS (--insecure); start this node with --insecure, "
            "or the SuperLink with its certificate"
        )
    problem = verify_problem(address, certificates)
    if problem is not None:
        return False, f"the SuperLink at {address}: {problem}"
    return True, f"the SuperLink at {address} answers over TLS and its certificate verifies against {certificates}"


def main(argv: list[str] | None = None) -> int:
    """Pre-flight check of a SuperNode's TLS settings: exit 0 to go on, 1 (one line on stderr) to stop."""
    parser = argparse.ArgumentParser(prog="python -m deploy.tls_probe", description=__doc__)
    parser.add_argument("--superlink", required=True, help="the SuperLink's host:port")
    security = parser.add_mutually_exclusive_group(required=True)
    security.add_argument("--ca", help="the CA certificate the node verifies the SuperLink with")
    security.add_argument("--insecure", action="store_true", help="the node talks plain HTTP")
    args = parser.parse_args(argv)
    fine, line = supernode_preflight(args.superlink, args.ca, args.insecure)
    print(line if fine else f"error: {line}", file=sys.stdout if fine else sys.stderr)
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())

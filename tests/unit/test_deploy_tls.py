"""TLS of an edge deployment without a cluster: the certificates make-certs.sh issues, start-superlink.sh's
refusals, and start-supernode.sh's pre-flight check against a tiny TLS (or plain) server on 127.0.0.1."""

from __future__ import annotations

import http.server
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from deploy.tls_probe import supernode_preflight
from tests.helpers import deploy_script, free_port

OPENSSL = shutil.which("openssl") or "openssl"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two federations' certificates: `federation` (for fl.example.org) and `other` (another CA)."""
    folders = {}
    for name, hosts in (("federation", "fl.example.org"), ("other", "localhost")):
        folder = tmp_path_factory.mktemp(name)
        assert deploy_script("make-certs.sh", "--out", str(folder), "--hosts", hosts).returncode == 0
        folders[name] = folder
    return folders


class _Quiet(http.server.BaseHTTPRequestHandler):
    """Answers every GET with 200, logging nothing."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()

    def log_message(self, *_: object) -> None:
        return


def _serve(host: str, certs: Path | None) -> Iterator[str]:
    """An HTTP server on `host` (HTTPS with `certs`'s SuperLink certificate, if given); yields host:port."""
    server = http.server.ThreadingHTTPServer((host, 0), _Quiet)
    if certs is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(certs / "superlink.crt", certs / "superlink.key")
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"{host}:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def tls_server(certs: dict[str, Path]) -> Iterator[str]:
    yield from _serve("127.0.0.1", certs["federation"])


@pytest.fixture(scope="module")
def plain_server() -> Iterator[str]:
    yield from _serve("127.0.0.1", None)


def test_the_superlink_certificate_always_names_loopback_and_an_operator_certificate_is_issued(
    certs: dict[str, Path],
) -> None:
    """The SuperLink's own ServerApp and its proxy reach it on 127.0.0.1 / localhost, whatever --hosts says."""
    folder = certs["federation"]
    san = subprocess.run(
        [OPENSSL, "x509", "-in", str(folder / "superlink.crt"), "-noout", "-ext", "subjectAltName"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "DNS:fl.example.org" in san and "DNS:localhost" in san and "IP Address:127.0.0.1" in san
    operator = subprocess.run(
        [OPENSSL, "verify", "-purpose", "sslclient", "-CAfile", str(folder / "ca.crt"), str(folder / "operator.crt")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert operator.returncode == 0 and operator.stdout.strip().endswith(": OK"), operator.stdout + operator.stderr
    assert (folder / "operator.key").stat().st_mode & 0o077 == 0, "the operator's key is private"


@pytest.mark.parametrize(
    ("arguments", "refusal"),
    [
        (["--public-address", "nowhere"], "--public-address 'nowhere' is not allowed; allowed: HOST:PORT"),
        (["--public-address", "0.0.0.0:8443", "--insecure"], "--public-address needs TLS"),
        (["--public-address", "10.0.0.5:8443", "--host", "10.0.0.5"], "--host '10.0.0.5' is not allowed with"),
        (["--public-address", "127.0.0.1:8000", "--port", "8000"], "is the SuperLink's own --host:--port"),
    ],
)
def test_start_superlink_refuses_a_public_address_it_cannot_guard_before_any_work(
    tmp_path: Path, arguments: list[str], refusal: str
) -> None:
    state = tmp_path / "state"
    result = deploy_script("start-superlink.sh", "--state", str(state), *arguments)
    assert result.returncode == 2, result.stdout + result.stderr
    assert refusal in result.stderr.splitlines()[0]
    assert not state.exists()


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed (Debian: apt-get install nginx)")
def test_start_superlink_stops_in_one_line_when_its_proxy_cannot_listen(tmp_path: Path, certs: dict[str, Path]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        public = f"127.0.0.1:{taken.getsockname()[1]}"
        result = deploy_script(
            "start-superlink.sh",
            "--state",
            str(tmp_path),
            "--certs",
            str(certs["federation"]),
            "--port",
            str(free_port()),
            "--public-address",
            public,
            timeout=30,
        )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: nginx could not listen on {public}: "), lines
    assert "Address already in use" in lines[0]


def _start_node(tmp_path: Path, superlink: str, *security: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """start-supernode.sh against `superlink`, given 30 s to stop by itself; its result and seconds taken."""
    started = time.monotonic()
    arguments = ["--superlink", superlink, "--port", str(free_port()), "--data-path", str(tmp_path)]
    result = deploy_script("start-supernode.sh", *arguments, "--executor", "flower", *security, timeout=30)
    return result, time.monotonic() - started


def test_an_insecure_node_against_a_tls_superlink_stops_in_one_line(tmp_path: Path, tls_server: str) -> None:
    result, seconds = _start_node(tmp_path, tls_server, "--insecure")
    assert result.returncode == 1 and seconds < 15
    assert result.stderr.strip().splitlines() == [
        f"error: the SuperLink at {tls_server} speaks TLS; pass --ca with the federation's ca.crt (not --insecure)"
    ]


def test_a_node_with_the_wrong_ca_stops_in_one_line(tmp_path: Path, tls_server: str, certs: dict[str, Path]) -> None:
    assert deploy_script("make-node-keys.sh", "--out", str(tmp_path), "node-key").returncode == 0
    key = tmp_path / "node-key"
    other_ca = certs["other"] / "ca.crt"
    result, seconds = _start_node(tmp_path, tls_server, "--ca", str(other_ca), "--key", str(key))
    assert result.returncode == 1 and seconds < 15
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith(
        f"error: the SuperLink at {tls_server}: certificate verify failed: "
        f"the SuperLink's certificate is not signed by {other_ca}"
    )


def test_the_preflight_names_each_mismatch_and_lets_a_right_node_or_an_absent_superlink_go_on(
    tls_server: str, plain_server: str, certs: dict[str, Path]
) -> None:
    ca = str(certs["federation"] / "ca.crt")
    assert supernode_preflight(tls_server, ca, insecure=False)[0]
    assert supernode_preflight(plain_server, None, insecure=True)[0]
    fine, line = supernode_preflight(plain_server, ca, insecure=False)
    assert not fine and line.startswith(f"the SuperLink at {plain_server} runs without TLS (--insecure)")
    absent = f"127.0.0.1:{free_port()}"
    assert supernode_preflight(absent, ca, insecure=False) == (
        True,
        f"nothing answers at {absent} yet; the SuperNode keeps retrying until a SuperLink listens there",
    )


def test_the_preflight_says_when_the_certificate_does_not_name_the_host(certs: dict[str, Path]) -> None:
    """127.0.0.2 is loopback too, but not in the certificate."""
    for address in _serve("127.0.0.2", certs["federation"]):
        fine, line = supernode_preflight(address, str(certs["federation"] / "ca.crt"), insecure=False)
        assert not fine
        assert "certificate verify failed: the SuperLink's certificate does not name '127.0.0.2'" in line

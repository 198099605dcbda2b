"""A real uvicorn-served FastAPI app over mTLS on loopback, and its hot reload (crank_security.server)."""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import signal
import socket
import ssl
import time
from pathlib import Path

import pytest
from conftest import SERVICE, Cert, Material, client_context, listening_socket, running_uvicorn, write_bundle
from fastapi import FastAPI

from crank_security import AntiFragileSecurityConfig, CertificatesUnavailable, install_security, serve, uvicorn_config

SWAP_DEADLINE = 2.0  # the promise: new handshakes use a new bundle within 2 s, no restart


def make_app(security: AntiFragileSecurityConfig) -> FastAPI:
    app = FastAPI()

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    install_security(app, security, timeout=1, client=False)
    return app


def kit_config(security: AntiFragileSecurityConfig, **kwargs):
    return uvicorn_config(
        make_app(security), security, timeout=1, log_config=None, log_level="warning",
        timeout_keep_alive=30, **kwargs,
    )


def get(port: int, ctx: ssl.SSLContext) -> tuple[str, int]:
    """One new connection: the served certificate's fingerprint and the status of GET /health."""
    with socket.create_connection(("127.0.0.1", port), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            fingerprint = hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest()
            tls.sendall(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            data = b""
            while chunk := tls.recv(4096):
                data += chunk
    if not data:
        raise ConnectionError("closed without an answer")
    return fingerprint, int(data.split()[1])


def wait_until_served(port: int, ctx: ssl.SSLContext, want: Cert) -> float:
    """Seconds until a new connection (made with ``ctx``) is served ``want``."""
    start = time.monotonic()
    while True:
        try:
            fingerprint, status = get(port, ctx)
            if fingerprint == want.fingerprint and status == 200:
                return time.monotonic() - start
        except (ssl.SSLError, OSError):
            pass
        if time.monotonic() - start > SWAP_DEADLINE + 1:
            pytest.fail(f"the new bundle was not served within {SWAP_DEADLINE + 1}s")
        time.sleep(0.05)


def refused(port: int, ctx: ssl.SSLContext) -> bool:
    try:
        get(port, ctx)
    except (ssl.SSLError, OSError):
        return True
    return False


def test_mtls_server_follows_renewal_and_ca_change_without_restart(
    material: Material, certs_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    m = material
    write_bundle(certs_dir, m.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    sock = listening_socket()
    port = sock.getsockname()[1]
    with running_uvicorn(kit_config(security), sock) as server:
        # (a) a client without a certificate is refused; (b) with one it works.
        assert refused(port, client_context(None, m.ca1, tmp=tmp_path))
        with_cert = client_context(m.client1, m.ca1, tmp=tmp_path)
        assert get(port, with_cert) == (m.server1.fingerprint, 200)

        # (d) a connection opened before the swaps, kept alive across them.
        kept = http.client.HTTPSConnection("localhost", port, context=with_cert, timeout=3)
        kept.request("GET", "/health")
        assert kept.getresponse().read() == b'{"status":"ok"}'
        kept_socket = kept.sock

        # (c) renewal under the same CA: the new leaf is served to new connections.
        write_bundle(certs_dir, m.bundle1b())
        assert wait_until_served(port, with_cert, m.server1b) < SWAP_DEADLINE

        # (c) a new CA (as after a rollover): new cert, and client certs now
        # verified against the new ca.crt only.
        write_bundle(certs_dir, m.bundle2())
        trusts_both = client_context(m.client2, m.ca1, m.ca2, tmp=tmp_path)
        assert wait_until_served(port, trusts_both, m.server2) < SWAP_DEADLINE
        assert get(port, client_context(m.client2, m.ca2, tmp=tmp_path)) == (m.server2.fingerprint, 200)
        assert refused(port, client_context(m.client1, m.ca1, m.ca2, tmp=tmp_path))  # old CA's client cert

        # (d) the old connection still works, on its old handshake.
        kept.request("GET", "/health")
        assert kept.getresponse().read() == b'{"status":"ok"}'
        assert kept.sock is kept_socket
        assert hashlib.sha256(kept.sock.getpeercert(binary_form=True)).hexdigest() == m.server1.fingerprint
        kept.close()
        assert server.started and not server.should_exit  # the same server throughout

    messages = [r.getMessage() for r in caplog.records if r.name == "crank_security"]
    starts = [msg for msg in messages if "serving mtls" in msg]
    assert len(starts) == 1 and f"bundle complete at {certs_dir}" in starts[0]
    assert sum("server now uses bundle generation" in msg for msg in messages) == 2
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_server_keeps_the_old_bundle_when_the_new_one_is_broken(
    material: Material, certs_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = material
    write_bundle(certs_dir, m.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    sock = listening_socket()
    port = sock.getsockname()[1]
    ctx = client_context(m.client1, m.ca1, tmp=tmp_path)
    with running_uvicorn(kit_config(security, reload_interval=0.2), sock):
        broken = m.bundle1b()
        broken["tls.key"] = m.server1.key  # a key from another issuance
        write_bundle(certs_dir, broken)
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # a stream of handshakes over several reload intervals
            assert get(port, ctx) == (m.server1.fingerprint, 200)
            time.sleep(0.05)
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1, warnings
        assert "tls.key: does not match tls.crt" in warnings[0] and "keeps bundle generation" in warnings[0]

        write_bundle(certs_dir, m.bundle1b())
        assert wait_until_served(port, ctx, m.server1b) < SWAP_DEADLINE


def test_development_without_a_bundle_serves_plain_http(certs_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    security = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir)
    config = uvicorn_config(make_app(security), security, timeout=0.2, log_config=None, log_level="warning")
    sock = listening_socket()
    with running_uvicorn(config, sock):
        conn = http.client.HTTPConnection("127.0.0.1", sock.getsockname()[1], timeout=3)
        conn.request("GET", "/health")
        assert conn.getresponse().status == 200
        conn.close()
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.INFO][0].startswith(
        f"{SERVICE}: serving plain: development"
    )


def test_production_without_a_bundle_does_not_start(certs_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    with pytest.raises(CertificatesUnavailable, match="no bundle directory"):
        uvicorn_config(make_app(security), security, timeout=0.2)
    with pytest.raises(SystemExit) as info:
        serve(make_app(security), security, timeout=0.2)
    assert info.value.code == 1
    (error,) = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert error.startswith(f"{SERVICE}: no complete mTLS bundle in {certs_dir} after 0.2s: no bundle directory")


def test_uvicorn_ssl_options_are_refused(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    with pytest.raises(TypeError, match="ssl_certfile"):
        uvicorn_config(make_app(security), security, ssl_certfile="/certs/svc/tls.crt")
    with pytest.raises(ValueError, match="one process"):
        uvicorn_config(make_app(security), security, workers=4)


def test_sigterm_while_serve_waits_for_the_bundle_exits_143() -> None:
    from crank_security.server import _sigterm_exits

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("the test runner handles SIGTERM itself")
    with pytest.raises(SystemExit) as info, _sigterm_exits():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler runs in this sleep and ends it
    assert info.value.code == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL

"""The adaptive httpx clients and their hot reload (crank_security.client)."""

from __future__ import annotations

import asyncio
import hashlib
import http.server
import logging
import secrets
import ssl
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import SERVICE, Cert, Material, write_bundle

import crank_security
from crank_security import AntiFragileSecurityConfig, CertificatesUnavailable
from crank_security.client import ReloadingAsyncTransport, ReloadingTransport

RELOAD = 0.1  # reload interval for these tests; each swap is followed by a longer sleep


class PeerServer:
    """An HTTPS server that requires client certificates and reports which one each connection showed.

    GET /whoami answers the SHA-256 of the client certificate; GET /slow sends
    half its body, then the rest once ``release_slow`` is set.
    """

    def __init__(self, tmp: Path, cert: Cert, *cas: Cert):
        d = tmp / ("peer-" + secrets.token_hex(4))
        d.mkdir()
        (d / "c.pem").write_bytes(cert.cert)
        (d / "k.pem").write_bytes(cert.key)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(d / "c.pem", d / "k.pem")
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata="".join(c.cert.decode() for c in cas))
        self.seen: list[tuple[int, str]] = []  # (client port, client cert fingerprint) per request
        self.release_slow = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                fingerprint = hashlib.sha256(self.connection.getpeercert(binary_form=True)).hexdigest()
                outer.seen.append((self.client_address[1], fingerprint))
                if self.path == "/slow":
                    self.send_response(200)
                    self.send_header("Content-Length", "8")
                    self.end_headers()
                    self.wfile.write(b"half")
                    self.wfile.flush()
                    outer.release_slow.wait(5)
                    self.wfile.write(b"done")
                    return
                body = fingerprint.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.url = f"https://localhost:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.release_slow.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peer(material: Material, tmp_path: Path) -> Iterator[PeerServer]:
    server = PeerServer(tmp_path, material.server1, material.ca1, material.ca2)
    yield server
    server.close()


def test_async_client_presents_the_new_client_cert_after_a_swap(
    material: Material, certs_dir: Path, peer: PeerServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    m = material
    write_bundle(certs_dir, m.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)

    async def scenario() -> None:
        async with security.create_adaptive_client(reload_interval=RELOAD) as client:
            transport = client._transport
            assert isinstance(transport, ReloadingAsyncTransport)
            assert (await client.get(peer.url + "/whoami")).text == m.client1.fingerprint
            assert (await client.get(peer.url + "/whoami")).text == m.client1.fingerprint  # pooled

            old_pool = transport._tracker._current.transport._pool  # httpcore's pool of the first bundle
            # A response still being read when the bundle changes.
            async with client.stream("GET", peer.url + "/slow") as slow:
                chunks = slow.aiter_raw()
                assert await chunks.__anext__() == b"half"

                write_bundle(certs_dir, m.bundle1b())
                await asyncio.sleep(RELOAD * 3)
                assert (await client.get(peer.url + "/whoami")).text == m.client1b.fingerprint
                assert transport.retiring == 1  # the old pool waits for the open response

                peer.release_slow.set()
                assert b"".join([c async for c in chunks]) == b"done"
            assert transport.retiring == 0 and old_pool.connections == []  # closed once idle

    asyncio.run(scenario())
    # One pooled connection for the old bundle (three requests), one new one after the swap.
    (old_port, _), *_ = peer.seen
    assert [port == old_port for port, _ in peer.seen] == [True, True, True, False]
    assert [fp for _, fp in peer.seen][-1] == m.client1b.fingerprint
    assert any("client now uses bundle generation" in r.getMessage() for r in caplog.records)


def test_async_client_trusts_only_ca_crt_and_follows_a_new_ca(
    material: Material, certs_dir: Path, tmp_path: Path
) -> None:
    m = material
    new_ca_peer = PeerServer(tmp_path, m.server2, m.ca2)
    try:
        write_bundle(certs_dir, m.bundle1())
        security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)

        async def scenario() -> None:
            async with security.create_adaptive_client(reload_interval=RELOAD) as client:
                with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # not a bare SSLError
                    await client.get(new_ca_peer.url + "/whoami")  # ca2 is not trusted yet
                write_bundle(certs_dir, m.bundle2())
                await asyncio.sleep(RELOAD * 3)
                assert (await client.get(new_ca_peer.url + "/whoami")).text == m.client2.fingerprint

        asyncio.run(scenario())
    finally:
        new_ca_peer.close()


def test_client_keeps_the_old_bundle_when_the_new_one_is_broken(
    material: Material, certs_dir: Path, peer: PeerServer, caplog: pytest.LogCaptureFixture
) -> None:
    m = material
    write_bundle(certs_dir, m.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    with security.create_adaptive_sync_client(reload_interval=RELOAD) as client:
        assert isinstance(client._transport, ReloadingTransport)
        assert client.get(peer.url + "/whoami").text == m.client1.fingerprint
        broken = m.bundle1b()
        del broken["client.key"]
        write_bundle(certs_dir, broken)
        for _ in range(5):
            threading.Event().wait(RELOAD)
            assert client.get(peer.url + "/whoami").text == m.client1.fingerprint
        write_bundle(certs_dir, m.bundle1b())
        threading.Event().wait(RELOAD * 3)
        assert client.get(peer.url + "/whoami").text == m.client1b.fingerprint
        assert client._transport.retiring == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "client.key: missing" in warnings[0], warnings


def test_production_refuses_a_client_without_certificates(certs_dir: Path) -> None:
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    with pytest.raises(CertificatesUnavailable, match="no bundle directory"):
        security.create_adaptive_client()
    with pytest.raises(CertificatesUnavailable):
        security.create_adaptive_sync_client()


def test_development_without_certificates_gets_a_verifying_plain_client(certs_dir: Path) -> None:
    security = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir)
    client = security.create_adaptive_sync_client()
    try:
        assert not isinstance(client._transport, ReloadingTransport)
    finally:
        client.close()


def test_tls_options_cannot_be_overridden(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    for option in ("verify", "cert", "transport", "proxies"):
        with pytest.raises(TypeError, match=option):
            security.create_adaptive_client(**{option: None})


def test_the_package_never_disables_verification() -> None:
    forbidden = ["verify" + "=False", "CERT" + "_NONE", "_create_unverified" + "_context", "InsecureSkip" + "Verify"]
    root = Path(crank_security.__file__).parent
    for path in [*root.glob("*.py"), *Path(__file__).parent.glob("*.py"), root.parent / "README.md"]:
        text = path.read_text() if path.exists() else ""
        for word in forbidden:
            assert word not in text, f"{path.name} contains {word}"

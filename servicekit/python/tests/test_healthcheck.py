"""The compose healthcheck CLI (python3 -m crank_security.healthcheck)."""

from __future__ import annotations

import http.server
import io
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import SERVICE, Material, listening_socket, running_uvicorn, write_bundle
from test_server import kit_config

from crank_security import AntiFragileSecurityConfig
from crank_security.healthcheck import main

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def mtls_port(material: Material, certs_dir: Path) -> Iterator[int]:
    write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    sock = listening_socket()
    with running_uvicorn(kit_config(security), sock):
        yield sock.getsockname()[1]


@pytest.fixture
def plain_port() -> Iterator[int]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/health" else 404)
            self.send_header("Content-Length", "0")
            self.end_headers()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def run(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(args), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_cli_presents_the_client_cert_over_mtls(certs_dir: Path, mtls_port: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(PACKAGE_ROOT), "CRANK_ENVIRONMENT": "production", "CRANK_CERTS_DIR": str(certs_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "crank_security.healthcheck", "--service", SERVICE, "--https-port", str(mtls_port)],
        env=env, capture_output=True, text=True, timeout=30,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"healthy: https://localhost:{mtls_port}/health (mtls, bundle generation ..")


def test_cli_fails_with_material_the_server_does_not_accept(
    material: Material, tmp_path: Path, mtls_port: int
) -> None:
    other = tmp_path / "other" / SERVICE
    write_bundle(other, material.bundle2())  # another CA: neither side accepts the other
    code, _, err = run("--service", SERVICE, "--certs-dir", str(other), "--https-port", str(mtls_port))
    assert code == 1
    assert "unhealthy: https://localhost" in err and "CERTIFICATE_VERIFY_FAILED" in err


def test_production_never_falls_back_to_http(
    monkeypatch: pytest.MonkeyPatch, material: Material, certs_dir: Path, plain_port: int
) -> None:
    monkeypatch.setenv("CRANK_ENVIRONMENT", "production")
    write_bundle(certs_dir, material.bundle1())
    closed = listening_socket()
    closed_port = closed.getsockname()[1]
    closed.close()
    code, out, err = run(
        "--service", SERVICE, "--certs-dir", str(certs_dir),
        "--https-port", str(closed_port), "--http-port", str(plain_port),
    )
    assert code == 1 and out == ""
    assert "unhealthy: https://localhost" in err and "http://" not in err


def test_development_falls_back_to_http_and_says_so(
    monkeypatch: pytest.MonkeyPatch, certs_dir: Path, plain_port: int
) -> None:
    monkeypatch.setenv("CRANK_ENVIRONMENT", "development")
    code, out, err = run("--service", SERVICE, "--certs-dir", str(certs_dir), "--http-port", str(plain_port))
    assert code == 0
    assert f"no complete bundle in {certs_dir}" in err
    assert out.startswith("healthy over plain HTTP (a downgrade, allowed in development only)")


def test_usage_errors() -> None:
    assert run()[0] == 2
    assert run("--service", "../x")[0] == 2
    assert run("--service", SERVICE, "--https-port", "https")[0] == 2

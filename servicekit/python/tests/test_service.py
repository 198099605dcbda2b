"""FastAPI integration: the seed's mixin, the startup hook and the lifespan (crank_security.service)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import httpx
import pytest
from conftest import SERVICE, Material, write_bundle
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.testclient import TestClient

from crank_security import (
    AntiFragileSecurityConfig,
    CertificatesUnavailable,
    SecurityLevel,
    ServiceSecurityMixin,
    install_security,
    security_lifespan,
)


class Platform(ServiceSecurityMixin):
    service_name = SERVICE
    certificate_timeout = 0.3


def test_mixin_in_the_seeds_shape(
    monkeypatch: pytest.MonkeyPatch, material: Material, certs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    monkeypatch.setenv("CRANK_CERTS_DIR", str(certs_dir))
    monkeypatch.setenv("CRANK_ENVIRONMENT", "production")
    write_bundle(certs_dir, material.bundle1())
    service = Platform()

    async def scenario() -> None:
        assert await service.startup() is SecurityLevel.MTLS
        client = service.create_platform_client(timeout=2)
        assert isinstance(client, httpx.AsyncClient)
        await client.aclose()

    asyncio.run(scenario())
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"{SERVICE}: security level mtls (bundle complete at {certs_dir}")


def test_mixin_in_production_without_certs_refuses_to_start(monkeypatch: pytest.MonkeyPatch, certs_dir: Path) -> None:
    monkeypatch.setenv("CRANK_CERTS_DIR", str(certs_dir))
    monkeypatch.setenv("CRANK_ENVIRONMENT", "production")
    with pytest.raises(CertificatesUnavailable, match="after 0.3s"):
        asyncio.run(Platform().startup())


def test_fastapi_startup_hook_opens_and_closes_the_client(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    app = FastAPI()
    install_security(app, security, timeout=1)
    with TestClient(app):
        client = app.state.crank_client
        assert isinstance(client, httpx.AsyncClient) and not client.is_closed
    assert client.is_closed


def test_starlette_lifespan(material: Material, certs_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    security = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir)
    app = Starlette(lifespan=security_lifespan(security, timeout=0.2))
    with TestClient(app):
        assert isinstance(app.state.crank_client, httpx.AsyncClient)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "crank_security"]
    assert [level for level, _ in messages].count(logging.WARNING) == 1
    assert any(msg.startswith(f"{SERVICE}: security level plain: development") for _, msg in messages)

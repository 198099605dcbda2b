"""crank_security: use the certificate bundles crank-mtls-controller issues, and follow their rotation.

The seed's ``security_utils`` API for Python services on FastAPI, uvicorn
0.17 and httpx 0.23. Importing the package loads only the standard-library
parts (levels, bundle checks, ``AntiFragileSecurityConfig``); the uvicorn,
httpx and FastAPI parts load on first use.

It talks to nothing on import. See the modules: ``config`` (where the
bundle is, waiting, levels), ``bundle`` (reading and checking one
generation), ``follow`` (noticing a new generation), ``server`` (uvicorn
with hot reload), ``client`` (httpx with hot reload), ``healthcheck`` (the
compose HEALTHCHECK CLI) and ``service`` (FastAPI integration).
"""

from __future__ import annotations

from typing import Any

from .bundle import Assessment, Bundle, assess
from .config import AntiFragileSecurityConfig
from .levels import CertificatesUnavailable, CrankSecurityError, Environment, SecurityLevel

_LAZY = {
    "serve": "server",
    "uvicorn_config": "server",
    "build_server_context": "server",
    "ReloadingServerContext": "server",
    "create_async_client": "client",
    "create_sync_client": "client",
    "ReloadingAsyncTransport": "client",
    "ReloadingTransport": "client",
    "ServiceSecurityMixin": "service",
    "install_security": "service",
    "security_lifespan": "service",
}

__all__ = [
    "AntiFragileSecurityConfig",
    "Assessment",
    "Bundle",
    "CertificatesUnavailable",
    "CrankSecurityError",
    "Environment",
    "SecurityLevel",
    "assess",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'crank_security' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value

"""FastAPI integration: the seed's ``ServiceSecurityMixin``, a startup hook and a lifespan.

FastAPI 0.92 (Debian bookworm) has no ``lifespan=`` argument, so
``install_security`` uses startup/shutdown event handlers; ``security_lifespan``
is the same for Starlette and later FastAPI versions. At startup either one
waits for the bundle without blocking the event loop, logs the one start
line (the level in use and why), and opens ``app.state.crank_client``, the
adaptive httpx client; at shutdown it closes that client.

It talks to the application object (event handlers, ``app.state``) and,
through ``config.py`` and ``client.py``, to the bundle directory and the
logger. It needs no FastAPI import: any Starlette-style app works.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from .config import DEFAULT_TIMEOUT, AntiFragileSecurityConfig
from .levels import SecurityLevel

if TYPE_CHECKING:
    import httpx

__all__ = ["ServiceSecurityMixin", "install_security", "security_lifespan"]


class ServiceSecurityMixin:
    """The seed's per-service pattern.

    Set ``service_name`` on the class (and optionally
    ``certificate_timeout``); the environment comes from CRANK_ENVIRONMENT.
    Call ``await self.startup()`` before serving, then make clients with
    ``create_platform_client()``.
    """

    service_name: str
    certificate_timeout: float = DEFAULT_TIMEOUT

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.security = AntiFragileSecurityConfig(service_name=self.service_name)

    async def startup(self) -> SecurityLevel:
        """Wait for the bundle (raises in production without one) and log the start line."""
        level = await self.security.ensure_certificates_async(self.certificate_timeout)
        self.security.announce()
        return level

    def create_platform_client(self, **httpx_kwargs: Any) -> httpx.AsyncClient:
        """An adaptive ``httpx.AsyncClient`` (client cert, trusts only ca.crt, follows the bundle)."""
        return self.security.create_adaptive_client(**httpx_kwargs)


async def _start(app: Any, security: AntiFragileSecurityConfig, timeout: float, client: bool) -> None:
    await security.ensure_certificates_async(timeout)
    security.announce()
    if client:
        app.state.crank_client = security.create_adaptive_client()


async def _stop(app: Any) -> None:
    client = getattr(app.state, "crank_client", None)
    if client is not None:
        await client.aclose()


def install_security(
    app: Any, security: AntiFragileSecurityConfig, *, timeout: float = DEFAULT_TIMEOUT, client: bool = True
) -> None:
    """Wire ``security`` into ``app``'s startup and shutdown (FastAPI 0.92 style).

    With ``client``, ``app.state.crank_client`` is the adaptive client.
    """
    async def startup() -> None:
        await _start(app, security, timeout, client)

    async def shutdown() -> None:
        await _stop(app)

    app.add_event_handler("startup", startup)
    app.add_event_handler("shutdown", shutdown)


def security_lifespan(
    security: AntiFragileSecurityConfig, *, timeout: float = DEFAULT_TIMEOUT, client: bool = True
) -> Callable[[Any], contextlib.AbstractAsyncContextManager[None]]:
    """A ``lifespan=`` for Starlette (and FastAPI >= 0.93) doing what ``install_security`` does."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[None]:
        await _start(app, security, timeout, client)
        try:
            yield
        finally:
            await _stop(app)

    return lifespan

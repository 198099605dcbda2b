"""Serve TLS from the bundle with uvicorn 0.17, and take each new bundle without a restart.

uvicorn 0.17 builds its SSLContext once, in ``Config.load()``, from file
names (and with ``ssl_ciphers="TLSv1"`` by default). Here uvicorn is handed a
context of ours instead. That context's ``sni_callback`` runs at the start of
every handshake, with or without SNI, and asks a ``BundleFollower`` which
generation is current (a ``readlink`` of ``..data`` at most every
``reload_interval`` seconds). When ``..data`` has moved to a complete,
consistent generation, it points the connection at a context built from it:
``ssl_object.context = new``. That switches both the certificate served and
the CA store client certificates are verified against. Connections already
open keep what they negotiated and finish normally. An incomplete or
inconsistent new generation is not used: the old one keeps serving, and one
WARN says why.

Only the level settled at start is served: a development service that
degraded to tls or plain needs a restart to reach mtls (OpenSSL fixes a
connection's verify mode before the callback runs).

It talks to the filesystem (through ``bundle.py``), to uvicorn (which it
configures and runs) and to the ``crank_security`` logger.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import uvicorn

from .bundle import Assessment
from .config import DEFAULT_HTTP_PORT, DEFAULT_HTTPS_PORT, DEFAULT_TIMEOUT, AntiFragileSecurityConfig, env_port
from .follow import DEFAULT_RELOAD_INTERVAL, BundleFollower
from .levels import CertificatesUnavailable, SecurityLevel

__all__ = ["ReloadingServerContext", "build_server_context", "serve", "uvicorn_config"]

logger = logging.getLogger("crank_security")

# uvicorn options that would make it build its own, never-reloading context.
_UVICORN_SSL_OPTIONS = (
    "ssl_keyfile", "ssl_certfile", "ssl_keyfile_password", "ssl_version",
    "ssl_cert_reqs", "ssl_ca_certs", "ssl_ciphers",
)


def _mtls_context(a: Assessment) -> ssl.SSLContext | None:
    return a.bundle.server_context if a.bundle is not None else None


def _tls_context(a: Assessment) -> ssl.SSLContext | None:
    return a.server_only_context


class ReloadingServerContext:
    """A server SSLContext (``.context``) whose handshakes follow the bundle.

    With ``require_client_cert`` (mtls) every handshake requires a client
    certificate that verifies against the current ca.crt; without it (tls,
    development only) clients are not asked for one.
    """

    def __init__(
        self,
        service: str,
        initial: Assessment,
        *,
        require_client_cert: bool = True,
        reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    ):
        self._pick: Callable[[Assessment], ssl.SSLContext | None] = (
            _mtls_context if require_client_cert else _tls_context
        )
        context = self._pick(initial)
        if context is None:
            raise ValueError(f"{service}: bundle in {initial.directory} cannot serve: {initial.summary()}")
        self._service = service
        self._follower = BundleFollower(
            service, initial,
            minimum=SecurityLevel.MTLS if require_client_cert else SecurityLevel.TLS,
            role="server", interval=reload_interval,
        )
        # The listening context is the first generation's own: the verify
        # mode a connection gets is fixed from it, the rest follows the swap.
        self.context: ssl.SSLContext = context
        self.context.sni_callback = self._on_client_hello

    @property
    def generation(self) -> str | None:
        """The generation new handshakes currently get (as of the last check)."""
        return self._follower.peek().generation

    def _on_client_hello(self, ssl_object: ssl.SSLObject, server_name: str | None, _listening: ssl.SSLContext) -> None:
        try:
            wanted = self._pick(self._follower.current())
            if wanted is not None and wanted is not ssl_object.context:
                ssl_object.context = wanted
        except Exception:
            # A failed reload must not fail the handshake: it gets the
            # context it already has.
            logger.exception("%s: server bundle reload check failed; serving the current bundle", self._service)
        return None


def build_server_context(
    security: AntiFragileSecurityConfig, *, reload_interval: float | None = None
) -> ssl.SSLContext | None:
    """The listening SSLContext for ``security``'s settled level; None at plain.

    Does not wait: call ``security.ensure_certificates`` first.
    """
    level = security.get_security_level()
    if level <= SecurityLevel.PLAIN:
        return None
    pick = _mtls_context if level is SecurityLevel.MTLS else _tls_context
    initial = security.newest_assessment(pick)
    if initial is None:
        a = security.assess()
        raise CertificatesUnavailable(
            f"{security.service_name}: cannot build a {level} server context from {a.directory}: {a.summary()}",
            service=security.service_name, directory=str(a.directory), problems=a.problems,
        )
    reloading = ReloadingServerContext(
        security.service_name, initial,
        require_client_cert=level is SecurityLevel.MTLS,
        reload_interval=DEFAULT_RELOAD_INTERVAL if reload_interval is None else reload_interval,
    )
    return reloading.context


class _KitConfig(uvicorn.Config):
    """uvicorn's Config, listening with a given SSLContext instead of building one."""

    def __init__(self, app: Any, *, ssl_context: ssl.SSLContext | None, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._kit_ssl_context = ssl_context

    def load(self) -> None:
        super().load()  # no ssl_* file options, so it sets self.ssl = None
        self.ssl = self._kit_ssl_context


def uvicorn_config(
    app: Any,
    security: AntiFragileSecurityConfig,
    *,
    host: str = "0.0.0.0",
    port: int | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    **uvicorn_kwargs: Any,
) -> uvicorn.Config:
    """A ``uvicorn.Config`` serving ``app`` at ``security``'s level, with hot reload.

    Waits up to ``timeout`` for the bundle (``ensure_certificates``: raises
    in production without one), then logs the start line. At mtls and tls it
    listens on ``port`` (default $SERVICE_HTTPS_PORT, else 8443) with a
    ``ReloadingServerContext``; at plain (development) on $SERVICE_PORT,
    else 8080. Other keyword arguments go to ``uvicorn.Config``; its ssl_*
    options are refused (they would pin one bundle), and so are several
    workers or ``reload`` (an SSLContext cannot cross processes).
    """
    refused = [k for k in _UVICORN_SSL_OPTIONS if k in uvicorn_kwargs]
    if refused:
        raise TypeError(f"uvicorn_config() takes TLS from the bundle; remove {', '.join(refused)}")
    if uvicorn_kwargs.get("workers") not in (None, 1) or uvicorn_kwargs.get("reload"):
        raise ValueError("uvicorn_config() serves from one process: workers must be 1 and reload off")
    security.ensure_certificates(timeout)
    context = build_server_context(security, reload_interval=reload_interval)
    if port is None:
        port = env_port("SERVICE_HTTPS_PORT", DEFAULT_HTTPS_PORT) if context else env_port("SERVICE_PORT", DEFAULT_HTTP_PORT)
    config = _KitConfig(app, ssl_context=context, host=host, port=port, **uvicorn_kwargs)
    security.mark_served_by_kit()
    security.announce()
    return config


def serve(
    app: Any,
    security: AntiFragileSecurityConfig,
    *,
    sockets: list[socket.socket] | None = None,
    **kwargs: Any,
) -> None:
    """Run ``app`` with uvicorn until it exits; arguments as ``uvicorn_config``.

    Meant as a service's main: if nothing configured logging, the
    ``crank_security`` logger gets a stderr handler so the start line shows,
    and without the bundle production requires, it logs why and exits with
    status 1. ``sockets`` are already-bound listening sockets to serve on
    instead of ``host``/``port``.
    """
    _make_logs_visible()
    with _sigterm_exits():
        try:
            config = uvicorn_config(app, security, **kwargs)
        except CertificatesUnavailable as exc:
            logger.error("%s", exc)
            raise SystemExit(1) from None
    uvicorn.Server(config).run(sockets=sockets)


@contextlib.contextmanager
def _sigterm_exits() -> Iterator[None]:
    """Make SIGTERM end the process until uvicorn installs its own handlers.

    As PID 1 in a container (compose without ``init: true``) Python ignores
    a signal it has no handler for, so a ``docker stop`` or a restart during
    the wait for the bundle would take the whole stop timeout and end in
    SIGKILL (measured: 11 s, exit 137, instead of 1 s). Only the default
    disposition is replaced, and it is restored on the way out.
    """
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def exit_on_sigterm(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, exit_on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _make_logs_visible() -> None:
    """Give the ``crank_security`` logger a handler if the process has none, as uvicorn does for its own."""
    if logger.handlers or logging.getLogger().handlers:
        return
    from uvicorn.logging import DefaultFormatter

    handler = logging.StreamHandler()
    handler.setFormatter(DefaultFormatter("%(levelprefix)s %(name)s: %(message)s", use_colors=False))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)

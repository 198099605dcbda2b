"""The seed's ``AntiFragileSecurityConfig``: one service's bundle, its level, and what follows.

It finds the service's bundle directory, waits for a complete, consistent
bundle (``ensure_certificates``), settles the level the service runs at, and
hands out what is built from that bundle: the uvicorn server context
(``server.py``), the httpx clients (``client.py``) and the compose
healthcheck (``healthcheck.py``).

It talks to the filesystem (the bundle directory, read through ``bundle.py``),
to the process environment (``CRANK_ENVIRONMENT``, ``CRANK_CERTS_DIR``,
``SERVICE_HTTPS_PORT``, ``SERVICE_PORT``) and to the ``crank_security`` logger.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .bundle import BUNDLE_FILES, DATA_LINK, Assessment, assess, generation_key
from .levels import CertificatesUnavailable, Environment, SecurityLevel

if TYPE_CHECKING:
    import ssl

    import httpx

__all__ = ["AntiFragileSecurityConfig", "DEFAULT_ROOTS", "DEFAULT_TIMEOUT"]

logger = logging.getLogger("crank_security")

# Where a bundle is looked for when CRANK_CERTS_DIR is not set, in order:
# <root>/<service>. The seed's services used both.
DEFAULT_ROOTS = (Path("/certs"), Path("/etc/certs"))
DEFAULT_TIMEOUT = 30.0
POLL_INTERVAL = 0.2
# While waiting, an unchanged bundle is read again this often anyway: a leaf
# that is not yet valid (clock skew) becomes valid without any file changing.
REASSESS_INTERVAL = 2.0
DEFAULT_HTTPS_PORT = 8443
DEFAULT_HTTP_PORT = 8080

# Compose service and container names; anything else could escape the roots.
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,252}")


def env_port(name: str, default: int) -> int:
    """The port in environment variable ``name``, or ``default``; a clear error if invalid."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{name}={raw!r} is not a TCP port")
    return int(raw)


class AntiFragileSecurityConfig:
    """One service's TLS material and the security level it runs at.

    ``environment`` is "development" or "production"; None reads
    ``CRANK_ENVIRONMENT``, and an unset or empty variable means development,
    as in the seed. Any other value is a ``ValueError``.

    The bundle directory is ``certs_dir`` if given, else ``$CRANK_CERTS_DIR``
    if set (either way the service's OWN directory, the one holding
    ``tls.crt`` and ``..data``, not the volume root), else the first of
    ``/certs/<service>`` and ``/etc/certs/<service>`` that holds bundle files,
    else the first that exists, else ``/certs/<service>``.

    The level is settled once, by the first ``ensure_certificates`` that
    finds a complete bundle or gives up in development; after that the
    bundle may rotate (servers and clients follow it) but the level stays.
    """

    def __init__(
        self,
        service_name: str,
        environment: str | Environment | None = None,
        *,
        certs_dir: str | os.PathLike[str] | None = None,
    ):
        if not isinstance(service_name, str) or not _SERVICE_NAME.fullmatch(service_name):
            raise ValueError(
                f"service name {service_name!r} is not valid: use [A-Za-z0-9][A-Za-z0-9_.-]*, "
                "as compose service names"
            )
        self.service_name = service_name
        if environment is None:
            raw = os.environ.get("CRANK_ENVIRONMENT")
            self.environment = Environment.parse(raw, "CRANK_ENVIRONMENT")
            self._environment_source = "CRANK_ENVIRONMENT" if raw and raw.strip() else "default, CRANK_ENVIRONMENT unset"
        else:
            self.environment = Environment.parse(environment, "environment")
            self._environment_source = "argument"

        self._fixed_dir: Path | None = None
        self._dir_from_argument = certs_dir is not None
        if certs_dir is not None:
            self._fixed_dir = Path(certs_dir)
        elif os.environ.get("CRANK_CERTS_DIR", "").strip():
            self._fixed_dir = Path(os.environ["CRANK_CERTS_DIR"].strip())

        self._lock = threading.Lock()
        self._settled: Assessment | None = None
        self._level: SecurityLevel | None = None
        self._reason = ""
        self._warned = False
        self._announced = False
        self._served_by_kit = False

    def __repr__(self) -> str:
        return (
            f"AntiFragileSecurityConfig({self.service_name!r}, {self.environment.value!r}, "
            f"certs_dir={str(self.certs_dir)!r}, level={self._level})"
        )

    @property
    def production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def certs_dir(self) -> Path:
        """The bundle directory: the settled one, else where it is looked for now."""
        if self._settled is not None:
            return self._settled.directory
        return self._locate()

    def _locate(self) -> Path:
        if self._fixed_dir is not None:
            return self._fixed_dir
        candidates = [root / self.service_name for root in DEFAULT_ROOTS]
        for c in candidates:
            if os.path.lexists(c / DATA_LINK) or any(os.path.lexists(c / n) for n in BUNDLE_FILES):
                return c
        for c in candidates:
            if c.is_dir():
                return c
        return candidates[0]

    # -- waiting and levels ---------------------------------------------------

    def assess(self) -> Assessment:
        """Read the bundle now, without waiting, logging or settling anything."""
        return _assess_stable(self._locate() if self._settled is None else self._settled.directory)

    def ensure_certificates(self, timeout: float = DEFAULT_TIMEOUT, *, poll_interval: float = POLL_INTERVAL) -> SecurityLevel:
        """Wait up to ``timeout`` seconds for a complete, consistent bundle.

        Returns ``SecurityLevel.MTLS`` as soon as one is there. Otherwise, at
        the deadline: in production it raises ``CertificatesUnavailable``
        naming each missing or wrong file; in development it logs ONE
        warning (once per config, however often this is called) and returns
        the level it can do (``TLS`` with a usable tls.crt/tls.key, else
        ``PLAIN``). Once settled, it returns the settled level at once.
        """
        steps = self._wait(timeout, poll_interval)
        try:
            while True:
                time.sleep(next(steps))
        except StopIteration as done:
            return done.value

    async def ensure_certificates_async(
        self, timeout: float = DEFAULT_TIMEOUT, *, poll_interval: float = POLL_INTERVAL
    ) -> SecurityLevel:
        """``ensure_certificates`` for coroutines: waits with ``asyncio.sleep``."""
        steps = self._wait(timeout, poll_interval)
        try:
            while True:
                await asyncio.sleep(next(steps))
        except StopIteration as done:
            return done.value

    def _wait(self, timeout: float, poll_interval: float) -> Generator[float, None, SecurityLevel]:
        if timeout < 0 or poll_interval <= 0:
            raise ValueError("timeout must be >= 0 and poll_interval > 0")
        if self._level is not None:
            return self._level
        start = time.monotonic()
        deadline = start + timeout
        current: Assessment | None = None
        read_at = 0.0
        while True:
            directory = self._locate()
            now = time.monotonic()
            if (
                current is None
                or directory != current.directory
                or now - read_at >= REASSESS_INTERVAL
                or generation_key(directory) != current.key
            ):
                current, read_at = _assess_stable(directory), now
                if current.complete:
                    return self._settle_complete(current, now - start)
            if now >= deadline:
                return self._settle_degraded(current, timeout)
            yield min(poll_interval, deadline - now)

    def _settle_complete(self, a: Assessment, waited: float) -> SecurityLevel:
        with self._lock:
            if self._level is None:
                self._settled, self._level = a, SecurityLevel.MTLS
                self._reason = f"bundle complete at {a.directory}" + (
                    f", generation {a.generation}" if a.generation else ""
                ) + (f", after waiting {waited:.1f}s" if waited >= 0.05 else "")
            return self._level

    def _settle_degraded(self, a: Assessment, timeout: float) -> SecurityLevel:
        if self.production:
            raise self._unavailable(a, f"after {timeout:g}s")
        with self._lock:
            if self._level is None:
                self._settled, self._level = a, a.level
                self._reason = (
                    f"development ({self._environment_source}), no complete bundle in {a.directory} "
                    f"after {timeout:g}s: {a.summary()}"
                )
            if not self._warned:
                self._warned = True
                logger.warning(
                    "%s: no complete mTLS bundle in %s after %gs: %s; continuing at %s because the environment is development",
                    self.service_name, a.directory, timeout, a.summary(), self._level,
                )
            return self._level

    def _unavailable(self, a: Assessment, when: str) -> CertificatesUnavailable:
        return CertificatesUnavailable(
            f"{self.service_name}: no complete mTLS bundle in {a.directory} {when}: {a.summary()} "
            f"(the environment is production, which never runs below mtls)",
            service=self.service_name, directory=str(a.directory), problems=a.problems,
        )

    def get_security_level(self) -> SecurityLevel:
        """The level this service runs at.

        After ``ensure_certificates`` it is the settled level. Before, it is
        what the bundle supports right now (no waiting, no warning): mtls if
        complete, else in development tls or plain. In production it never
        returns anything below mtls: it raises ``CertificatesUnavailable``.
        """
        if self._level is not None:
            return self._level
        a = self.assess()
        if a.complete:
            return SecurityLevel.MTLS
        if self.production:
            raise self._unavailable(a, "now")
        return a.level

    def newest_assessment(self, usable: Callable[[Assessment], object]) -> Assessment | None:
        """The newest read of the bundle for which ``usable`` returns something.

        The bundle as it is now if usable, else the one the level was
        settled on (its contexts are in memory, and whoever builds from it
        follows the directory from there), else None.
        """
        a = self.assess()
        if usable(a) is not None:
            return a
        if self._settled is not None and usable(self._settled) is not None:
            return self._settled
        return None

    def mark_served_by_kit(self) -> None:
        """Record that this package set up the server's TLS (the start line says "serving")."""
        self._served_by_kit = True

    # -- what is built from the bundle ----------------------------------------

    def server_ssl_context(self, *, reload_interval: float | None = None) -> ssl.SSLContext | None:
        """The SSLContext a server should listen with, or None for plain HTTP.

        At mtls it requires client certificates issued by a CA of ca.crt,
        and it follows the bundle: see ``crank_security.server``. Call
        ``ensure_certificates`` first, or the level is decided without waiting.
        """
        from .server import build_server_context

        return build_server_context(self, reload_interval=reload_interval)

    def create_adaptive_client(self, **httpx_kwargs: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` that presents client.crt and trusts only ca.crt.

        It follows the bundle: after a rotation, new connections use the new
        material. In production it refuses to build without a complete
        bundle. See ``crank_security.client``.
        """
        from .client import create_async_client

        return create_async_client(self, **httpx_kwargs)

    def create_adaptive_sync_client(self, **httpx_kwargs: Any) -> httpx.Client:
        """The blocking counterpart of ``create_adaptive_client`` (an ``httpx.Client``)."""
        from .client import create_sync_client

        return create_sync_client(self, **httpx_kwargs)

    def get_health_check_config(
        self,
        *,
        https_port: int | None = None,
        http_port: int | None = None,
        path: str = "/health",
        interval: str = "10s",
        timeout: str = "5s",
        retries: int = 3,
        start_period: str = "40s",
    ) -> dict[str, Any]:
        """The compose ``healthcheck:`` mapping for this service.

        Its test runs ``python3 -m crank_security.healthcheck`` in the
        container (no curl needed): HTTPS presenting client.crt, verified
        against ca.crt. In development it may fall back to plain HTTP on
        ``http_port`` (a downgrade it says out loud); in production it never
        does. Ports default to $SERVICE_HTTPS_PORT / $SERVICE_PORT, then
        8443 / 8080.
        """
        https_port = https_port or env_port("SERVICE_HTTPS_PORT", DEFAULT_HTTPS_PORT)
        test = [
            "CMD", "python3", "-m", "crank_security.healthcheck",
            "--service", self.service_name, "--https-port", str(https_port), "--path", path,
        ]
        if self._dir_from_argument and self._fixed_dir is not None:
            test += ["--certs-dir", str(self._fixed_dir)]
        if not self.production:
            test += ["--http-port", str(http_port or env_port("SERVICE_PORT", DEFAULT_HTTP_PORT))]
        return {
            "test": test,
            "interval": interval,
            "timeout": timeout,
            "retries": retries,
            "start_period": start_period,
        }

    # -- the start line ---------------------------------------------------------

    def describe(self) -> str:
        """One line: the level in use and why."""
        if self._level is None:
            return f"{self.service_name}: security level not settled yet (ensure_certificates has not run)"
        verb = "serving" if self._served_by_kit else "security level"
        a = self._settled
        if self._level is SecurityLevel.MTLS and a is not None and a.bundle is not None:
            b = a.bundle
            plural = "" if b.ca_count == 1 else "s"
            return (
                f"{self.service_name}: {verb} mtls ({self._reason}; trust bundle {b.ca_count} CA{plural}; "
                f"client identity {b.client_identity}; leaves valid until {b.not_after}; "
                f"{self.environment.value})"
            )
        return f"{self.service_name}: {verb} {self._level}: {self._reason}"

    def announce(self) -> None:
        """Log ``describe()`` at INFO, once per config, however often it is called."""
        with self._lock:
            if self._announced or self._level is None:
                return
            self._announced = True
        logger.info("%s", self.describe())


def _assess_stable(directory: Path) -> Assessment:
    """``assess``, read again (a few times at most) if the bundle moved under it."""
    a = assess(directory)
    for _ in range(3):
        if not a.changed:
            break
        a = assess(directory)
    return a

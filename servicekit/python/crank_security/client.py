"""httpx clients that present the service's client certificate and follow the bundle.

httpx 0.23 takes ``verify=<SSLContext>``, and a pooled connection keeps the
context it was opened with. So the client built here is an ordinary
``httpx.AsyncClient`` (or ``httpx.Client``) over a transport that holds one
inner ``httpx.AsyncHTTPTransport`` per bundle generation. Per request it asks
a ``BundleFollower`` for the current generation (a ``readlink`` of ``..data``
at most every ``reload_interval`` seconds). When that changed, new requests
go through a new inner transport, hence new connections with the new client
certificate and trust, and the previous transport is closed once its last
response is closed. Requests already under way are not disturbed.

The context trusts only ca.crt and checks host names; nothing here turns
verification off. In production no client is built without a complete
bundle. A development service whose bundle is incomplete gets a plain
``httpx`` client with httpx's default verification and no client
certificate.

It talks to peers over HTTP(S) through httpx, to the filesystem (through
``bundle.py``) and to the ``crank_security`` logger.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, Generic, TypeVar

import httpx

from .bundle import Assessment
from .config import AntiFragileSecurityConfig
from .follow import DEFAULT_RELOAD_INTERVAL, BundleFollower
from .levels import CertificatesUnavailable, SecurityLevel

__all__ = [
    "ReloadingAsyncTransport",
    "ReloadingTransport",
    "create_async_client",
    "create_sync_client",
]

logger = logging.getLogger("crank_security")

# Options that would let a caller replace the TLS this module sets up.
_REFUSED_OPTIONS = ("verify", "cert", "transport", "mounts", "proxies", "app")
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

T = TypeVar("T")


class _Generation(Generic[T]):
    __slots__ = ("assessment", "transport", "active")

    def __init__(self, assessment: Assessment, transport: T):
        self.assessment = assessment
        self.transport = transport
        self.active = 0  # requests whose response is not closed yet


class _Tracker(Generic[T]):
    """Which inner transport new requests use, and which old ones may close."""

    def __init__(self, follower: BundleFollower, make: Callable[[ssl.SSLContext], T]):
        self._follower = follower
        self._make = make
        self._lock = threading.Lock()
        first = follower.peek()
        assert first.bundle is not None
        self._current: _Generation[T] = _Generation(first, make(first.bundle.client_context))
        self._retiring: list[_Generation[T]] = []
        self._closed = False

    def acquire(self) -> tuple[_Generation[T], list[T]]:
        a = self._follower.current()
        with self._lock:
            if self._closed:
                raise RuntimeError("the client's transport is closed")
            if a is not self._current.assessment and a.bundle is not None:
                self._retiring.append(self._current)
                self._current = _Generation(a, self._make(a.bundle.client_context))
            gen = self._current
            gen.active += 1
            return gen, self._take_idle()

    def release(self, gen: _Generation[T]) -> list[T]:
        with self._lock:
            gen.active -= 1
            return self._take_idle()

    def _take_idle(self) -> list[T]:
        idle = [g.transport for g in self._retiring if g.active == 0]
        self._retiring = [g for g in self._retiring if g.active > 0]
        return idle

    def close_all(self) -> list[T]:
        with self._lock:
            self._closed = True
            everything = [self._current.transport] + [g.transport for g in self._retiring]
            self._retiring = []
            return everything

    @property
    def generation(self) -> str | None:
        return self._current.assessment.generation

    @property
    def retiring(self) -> int:
        return len(self._retiring)


async def _aclose_each(transports: list[httpx.AsyncBaseTransport]) -> None:
    for t in transports:
        try:
            await t.aclose()
        except Exception:
            logger.debug("closing a retired client transport failed", exc_info=True)


def _close_each(transports: list[httpx.BaseTransport]) -> None:
    for t in transports:
        try:
            t.close()
        except Exception:
            logger.debug("closing a retired client transport failed", exc_info=True)


def _raise_as_httpx(exc: BaseException, request: httpx.Request) -> None:
    """Re-raise a TLS failure as ``httpx.ConnectError``; return for anything else.

    With Debian's httpx 0.23 and anyio 3.6, a refused certificate escapes as
    a bare ``ssl.SSLError``, past handlers written for ``httpx.HTTPError``.
    """
    if isinstance(exc, ssl.SSLError):
        raise httpx.ConnectError(f"TLS with {request.url.host}: {exc}", request=request) from exc


class _AsyncReleasingStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, tracker: _Tracker, gen: _Generation):
        self._inner, self._tracker, self._gen = inner, tracker, gen
        self._released = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._inner:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            if not self._released:
                self._released = True
                await _aclose_each(self._tracker.release(self._gen))


class _ReleasingStream(httpx.SyncByteStream):
    def __init__(self, inner: httpx.SyncByteStream, tracker: _Tracker, gen: _Generation):
        self._inner, self._tracker, self._gen = inner, tracker, gen
        self._released = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self._inner

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            if not self._released:
                self._released = True
                _close_each(self._tracker.release(self._gen))


class ReloadingAsyncTransport(httpx.AsyncBaseTransport):
    """An httpx async transport whose NEW connections use the current bundle."""

    def __init__(self, follower: BundleFollower, *, limits: httpx.Limits = DEFAULT_LIMITS, retries: int = 0):
        self._tracker: _Tracker[httpx.AsyncHTTPTransport] = _Tracker(
            follower, lambda ctx: httpx.AsyncHTTPTransport(verify=ctx, limits=limits, retries=retries)
        )

    @property
    def generation(self) -> str | None:
        """The generation new requests go out with (as of the last request)."""
        return self._tracker.generation

    @property
    def retiring(self) -> int:
        """Previous generations' transports still waiting for open responses."""
        return self._tracker.retiring

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        gen, idle = self._tracker.acquire()
        await _aclose_each(idle)
        try:
            response = await gen.transport.handle_async_request(request)
        except BaseException as exc:
            await _aclose_each(self._tracker.release(gen))
            _raise_as_httpx(exc, request)
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _AsyncReleasingStream(response.stream, self._tracker, gen)
        return response

    async def aclose(self) -> None:
        await _aclose_each(self._tracker.close_all())


class ReloadingTransport(httpx.BaseTransport):
    """The blocking counterpart of ``ReloadingAsyncTransport``."""

    def __init__(self, follower: BundleFollower, *, limits: httpx.Limits = DEFAULT_LIMITS, retries: int = 0):
        self._tracker: _Tracker[httpx.HTTPTransport] = _Tracker(
            follower, lambda ctx: httpx.HTTPTransport(verify=ctx, limits=limits, retries=retries)
        )

    @property
    def generation(self) -> str | None:
        return self._tracker.generation

    @property
    def retiring(self) -> int:
        return self._tracker.retiring

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        gen, idle = self._tracker.acquire()
        _close_each(idle)
        try:
            response = gen.transport.handle_request(request)
        except BaseException as exc:
            _close_each(self._tracker.release(gen))
            _raise_as_httpx(exc, request)
            raise
        assert isinstance(response.stream, httpx.SyncByteStream)
        response.stream = _ReleasingStream(response.stream, self._tracker, gen)
        return response

    def close(self) -> None:
        _close_each(self._tracker.close_all())


def _follower(security: AntiFragileSecurityConfig, kwargs: dict[str, Any], reload_interval: float) -> BundleFollower | None:
    refused = [k for k in _REFUSED_OPTIONS if k in kwargs]
    if refused:
        raise TypeError(f"the adaptive client sets up TLS from the bundle; remove {', '.join(refused)}")
    security.get_security_level()  # raises in production without a complete bundle
    initial = security.newest_assessment(lambda a: a.bundle)
    if initial is not None:
        return BundleFollower(
            security.service_name, initial, minimum=SecurityLevel.MTLS, role="client", interval=reload_interval
        )
    a = security.assess()
    if security.production:
        raise CertificatesUnavailable(
            f"{security.service_name}: refusing to build a client without a complete bundle in {a.directory}: "
            f"{a.summary()}",
            service=security.service_name, directory=str(a.directory), problems=a.problems,
        )
    logger.debug(
        "%s: client without a client certificate (development, bundle in %s incomplete: %s)",
        security.service_name, a.directory, a.summary(),
    )
    return None


def create_async_client(
    security: AntiFragileSecurityConfig,
    *,
    reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    limits: httpx.Limits = DEFAULT_LIMITS,
    **client_kwargs: Any,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` presenting client.crt and trusting only ca.crt, following the bundle.

    ``client_kwargs`` go to ``httpx.AsyncClient`` (timeout, headers,
    base_url, ...); TLS and transport options are refused.
    """
    follower = _follower(security, client_kwargs, reload_interval)
    if follower is None:
        return httpx.AsyncClient(limits=limits, **client_kwargs)
    return httpx.AsyncClient(transport=ReloadingAsyncTransport(follower, limits=limits), **client_kwargs)


def create_sync_client(
    security: AntiFragileSecurityConfig,
    *,
    reload_interval: float = DEFAULT_RELOAD_INTERVAL,
    limits: httpx.Limits = DEFAULT_LIMITS,
    **client_kwargs: Any,
) -> httpx.Client:
    """The blocking counterpart of ``create_async_client`` (an ``httpx.Client``)."""
    follower = _follower(security, client_kwargs, reload_interval)
    if follower is None:
        return httpx.Client(limits=limits, **client_kwargs)
    return httpx.Client(transport=ReloadingTransport(follower, limits=limits), **client_kwargs)

"""Follow a bundle directory across rotations: always the newest usable generation.

A ``BundleFollower`` answers "which generation should a NEW handshake or
connection use?" cheaply enough to ask on every one: at most every
``interval`` seconds it does one ``readlink`` of ``..data`` (the controller
swaps bundles by renaming that link, so each generation is seen exactly
once, never half-written), and only when the link moved does it read and
check the new generation. A generation that is incomplete or inconsistent
is not adopted: the follower keeps the previous one and logs one WARN for
it.

It talks to the filesystem (through ``bundle.py``) and to the
``crank_security`` logger.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from .bundle import Assessment, assess, generation_key
from .levels import SecurityLevel

__all__ = ["BundleFollower", "DEFAULT_RELOAD_INTERVAL"]

logger = logging.getLogger("crank_security")

# Bounds how long a new handshake or connection may still use the previous
# bundle after a swap (the promise is 2 s), and how often ..data is read.
DEFAULT_RELOAD_INTERVAL = 0.5
# A rejected generation is checked again this often (without a new WARN):
# a leaf that is not yet valid becomes valid without any file changing.
REJECTED_RETRY = 10.0


def _label(a: Assessment) -> str:
    return a.generation or "(plain files)"


class BundleFollower:
    """The newest generation in a bundle directory that is at least ``minimum``.

    Thread-safe. ``current()`` is what callers ask per handshake or request.
    """

    def __init__(
        self,
        service: str,
        initial: Assessment,
        *,
        minimum: SecurityLevel,
        role: str,
        interval: float = DEFAULT_RELOAD_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ):
        if initial.level < minimum:
            raise ValueError(f"initial bundle is {initial.level}, below {minimum}")
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self._service = service
        self._role = role
        self._minimum = minimum
        self._interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._current = initial
        self._next_check = clock() + interval
        self._rejected_key: tuple | None = None
        self._retry_at = 0.0

    @property
    def directory(self):
        return self._current.directory

    def peek(self) -> Assessment:
        """The generation in use, without looking at the directory."""
        return self._current

    def current(self) -> Assessment:
        """The generation to use now; may read the directory (see the module doc)."""
        now = self._clock()
        if now < self._next_check:
            return self._current
        with self._lock:
            if now < self._next_check:
                return self._current
            self._next_check = now + self._interval
            key = generation_key(self._current.directory)
            if key == self._current.key:
                return self._current
            if key == self._rejected_key and now < self._retry_at:
                return self._current
            a = assess(self._current.directory)
            if a.changed:
                self._next_check = now  # moved while read: look again next time
                return self._current
            if a.level >= self._minimum:
                previous, self._current = self._current, a
                self._rejected_key = None
                logger.info(
                    "%s: %s now uses bundle generation %s (was %s)",
                    self._service, self._role, _label(a), _label(previous),
                )
            else:
                if a.key != self._rejected_key:
                    logger.warning(
                        "%s: %s keeps bundle generation %s: the new generation %s in %s is not usable: %s",
                        self._service, self._role, _label(self._current), _label(a), a.directory, a.summary(),
                    )
                self._rejected_key, self._retry_at = a.key, now + REJECTED_RETRY
            return self._current

"""Security levels, environments and the package's errors.

Pure definitions: this module talks to nothing.
"""

from __future__ import annotations

import enum

__all__ = [
    "CertificatesUnavailable",
    "CrankSecurityError",
    "Environment",
    "SecurityLevel",
]

_RANK = {"down": 0, "plain": 1, "tls": 2, "mtls": 3}


class SecurityLevel(enum.StrEnum):
    """What a service serves, strongest first: mtls > tls > plain > down.

    Members are strings ("mtls", ...) so they log and serialize as such, but
    they order by strength, not alphabetically: ``SecurityLevel.MTLS >
    SecurityLevel.TLS``, and ``level >= "tls"`` works too.

    - ``MTLS``: TLS with the service's certificate, and client certificates
      issued by a CA of ``ca.crt`` are required.
    - ``TLS``: TLS with the service's certificate, clients are not
      authenticated (development only, when the client half is unusable).
    - ``PLAIN``: plain HTTP (development only).
    - ``DOWN``: nothing answers; for reporting other services, never chosen
      by this package.
    """

    MTLS = "mtls"
    TLS = "tls"
    PLAIN = "plain"
    DOWN = "down"

    @property
    def rank(self) -> int:
        return _RANK[self.value]

    def _other_rank(self, other: object) -> int | None:
        if isinstance(other, str) and other in _RANK:
            return _RANK[str(other)]
        return None

    def __lt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank < rank

    def __le__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank <= rank

    def __gt__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank > rank

    def __ge__(self, other: object) -> bool:
        rank = self._other_rank(other)
        return NotImplemented if rank is None else self.rank >= rank



class Environment(enum.StrEnum):
    """Where a service runs; it decides what happens without a good bundle.

    In ``PRODUCTION`` nothing below mtls is ever served or used. In
    ``DEVELOPMENT`` a service degrades (with one WARN) instead of failing.
    """

    DEVELOPMENT = "development"
    PRODUCTION = "production"

    @classmethod
    def parse(cls, value: str | Environment | None, source: str = "environment") -> Environment:
        """Parse ``value``; None or "" means development (the seed's default).

        Anything else than development/production (case-insensitive) is a
        ``ValueError`` naming ``source``, so a typo such as "prod" never
        silently picks a level.
        """
        if isinstance(value, Environment):
            return value
        if value is None or value.strip() == "":
            return cls.DEVELOPMENT
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(
                f"{source}={value!r} is not valid: use 'development' or 'production'"
            ) from None


class CrankSecurityError(Exception):
    """Base class of this package's errors."""


class CertificatesUnavailable(CrankSecurityError):
    """No complete, consistent bundle where one is required.

    ``problems`` lists what is missing or wrong, file by file, e.g.
    ``("tls.key: missing", "client.crt: does not verify against ca.crt: ...")``.
    """

    def __init__(self, message: str, *, service: str, directory: str, problems: tuple[str, ...]):
        super().__init__(message)
        self.service = service
        self.directory = directory
        self.problems = problems

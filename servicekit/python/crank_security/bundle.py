"""Read and check one service's certificate bundle, one generation at a time.

The controller writes ``<dir>/{tls.crt,tls.key,client.crt,client.key,ca.crt}``
as symlinks into ``..data``, itself a symlink to a ``..<timestamp>``
generation directory that a single rename swaps (Kubernetes' AtomicWriter
layout). This module resolves ``..data`` once per read, so the five files it
checks always come from one generation, and a plain directory of the five
files (no ``..data``) works too.

Checks use the ``ssl`` module only. ``load_cert_chain`` proves each key is
the one of its certificate. A throwaway TLS handshake in memory, between a
context holding the leaf and one trusting only ``ca.crt``, proves the leaf
(plus any intermediates that follow it in the file) chains to ``ca.crt``,
is within its validity period, and carries the extended key usage OpenSSL
enforces for its role: serverAuth for ``tls.crt``, clientAuth for
``client.crt``.

It talks to the filesystem only: nothing here opens a socket.
"""

from __future__ import annotations

import os
import ssl
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .levels import SecurityLevel

__all__ = [
    "BUNDLE_FILES",
    "Assessment",
    "Bundle",
    "assess",
    "generation_key",
]

SERVER_CERT = "tls.crt"
SERVER_KEY = "tls.key"
CLIENT_CERT = "client.crt"
CLIENT_KEY = "client.key"
CA_CERT = "ca.crt"
BUNDLE_FILES = (SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY, CA_CERT)
DATA_LINK = "..data"

# Real PEM bundles are a few KiB; anything this large is not one.
MAX_FILE_SIZE = 1 << 20

# X509_V_ERR_INVALID_PURPOSE: the leaf lacks the extended key usage its role needs.
_X509_INVALID_PURPOSE = 26


def generation_key(directory: Path) -> tuple:
    """A cheap token that changes whenever the bundle in ``directory`` may have.

    With ``..data`` it is the link's target: one ``readlink``, and each
    AtomicWriter generation yields exactly one new key. Without it (a plain
    directory of files) it is the identity and mtime of each file.
    """
    try:
        return ("data", os.readlink(directory / DATA_LINK))
    except OSError:
        pass
    stats: list[tuple[int, int, int, int] | None] = []
    for name in BUNDLE_FILES:
        try:
            st = os.stat(directory / name)
        except OSError:
            stats.append(None)
        else:
            stats.append((st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size))
    return ("files", tuple(stats))


@dataclass(frozen=True, eq=False)
class Bundle:
    """A complete, consistent bundle of one generation, ready to use.

    The contexts hold the material in memory: they keep working after the
    controller deletes the generation's files.
    """

    directory: Path
    generation: str | None
    # tls.crt/tls.key; client certificates required, verified against ca.crt.
    server_context: ssl.SSLContext
    # client.crt/client.key presented; servers verified against ca.crt only,
    # host names checked.
    client_context: ssl.SSLContext
    ca_count: int
    server_names: tuple[str, ...]
    client_identity: str
    not_after: str  # the earlier expiry of the two leaves, as OpenSSL prints it


@dataclass(frozen=True, eq=False)
class Assessment:
    """What one read of a bundle directory found.

    ``problems`` is empty exactly when ``bundle`` is set. ``server_only_context``
    is set whenever tls.crt/tls.key are usable (and chain to ca.crt if that
    is usable): a TLS server without client authentication, which only a
    development service degraded to tls uses.
    """

    directory: Path
    generation: str | None
    key: tuple
    problems: tuple[str, ...]
    bundle: Bundle | None = None
    server_only_context: ssl.SSLContext | None = None
    # The bundle changed while it was read; read again rather than report.
    changed: bool = False

    @property
    def complete(self) -> bool:
        return self.bundle is not None

    @property
    def level(self) -> SecurityLevel:
        """The best level this bundle supports, regardless of environment."""
        if self.bundle is not None:
            return SecurityLevel.MTLS
        if self.server_only_context is not None:
            return SecurityLevel.TLS
        return SecurityLevel.PLAIN

    def summary(self) -> str:
        return "; ".join(self.problems) if self.problems else "complete"


def assess(directory: str | os.PathLike[str]) -> Assessment:
    """Read ``directory`` once and check its bundle. Never raises for bad input."""
    directory = Path(directory)
    key = generation_key(directory)
    if not directory.is_dir():
        return Assessment(directory, None, key, (f"no bundle directory {directory}",))

    generation: str | None = None
    base = directory
    if key[0] == "data":
        generation = key[1]
        if os.sep in generation or generation in ("", ".", ".."):
            return Assessment(
                directory, generation, key, (f"{DATA_LINK} -> {generation}: not a generation in {directory}",)
            )
        base = directory / generation
        if not base.is_dir():
            return Assessment(directory, generation, key, (f"{DATA_LINK} -> {generation}: no such generation",))

    problems: list[str] = []
    paths = {name: str(base / name) for name in BUNDLE_FILES}
    present = set()
    for name in BUNDLE_FILES:
        problem = _file_problem(paths[name])
        if problem:
            problems.append(f"{name}: {problem}")
        else:
            present.add(name)

    try:
        result = _Checker(paths, present, problems).run()
    except (ssl.SSLError, OSError) as exc:  # e.g. the generation was deleted mid-read
        result = {}
        problems.append(f"bundle unreadable: {_ssl_reason(exc)}")

    if generation_key(directory) != key:
        return Assessment(directory, generation, key, ("bundle changed while being read",), changed=True)
    if problems:
        return Assessment(
            directory, generation, key, tuple(problems), server_only_context=result.get("server_only_context")
        )
    bundle = Bundle(
        directory=directory,
        generation=generation,
        server_context=result["server_context"],
        client_context=result["client_context"],
        ca_count=result["ca_count"],
        server_names=result["server_names"],
        client_identity=result["client_identity"],
        not_after=result["not_after"],
    )
    return Assessment(directory, generation, key, (), bundle=bundle, server_only_context=result["server_only_context"])


def _file_problem(path: str) -> str | None:
    """Why ``path`` cannot be a bundle file, or None. Never opens it.

    A FIFO or device planted in a bundle directory would block or misbehave
    when opened, so only regular files of sane size are read.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty"
    if st.st_size > MAX_FILE_SIZE:
        return f"larger than {MAX_FILE_SIZE} bytes"
    if not os.access(path, os.R_OK):
        return "not readable by this process"
    return None


def _ssl_reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return exc.verify_message or str(exc)
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return exc.reason.replace("_", " ").lower()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)


class _Checker:
    """The checks of one generation; fills ``problems`` and returns contexts."""

    def __init__(self, paths: dict[str, str], present: set[str], problems: list[str]):
        self.paths = paths
        self.present = present
        self.problems = problems

    def run(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        ca_ok = self._check_ca(out)

        server_pair = self._load_pair(ssl.PROTOCOL_TLS_SERVER, SERVER_CERT, SERVER_KEY)
        server_ok = False
        if server_pair is not None and ca_ok:
            server_ok = self._check_server_leaf(server_pair, out)
        elif server_pair is not None:
            server_ok = True  # nothing to chain to; fine for a TLS-only fallback

        client_pair = self._load_pair(ssl.PROTOCOL_TLS_CLIENT, CLIENT_CERT, CLIENT_KEY)
        mtls_server = None
        if client_pair is not None and ca_ok:
            if server_ok:
                mtls_server = self._check_client_leaf(client_pair, out)
            else:
                self.problems.append(f"{CLIENT_CERT}: not checked against {CA_CERT} (needs a usable {SERVER_CERT})")

        if not self.problems and mtls_server is not None:
            out["server_context"] = mtls_server
            out["client_context"] = self._real_client_context()
        if server_ok and server_pair is not None:
            out["server_only_context"] = _server_context(self.paths[SERVER_CERT], self.paths[SERVER_KEY])
        return out

    def _check_ca(self, out: dict[str, Any]) -> bool:
        if CA_CERT not in self.present:
            return False
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_verify_locations(cafile=self.paths[CA_CERT])
        except (ssl.SSLError, OSError) as exc:
            self.problems.append(f"{CA_CERT}: no usable certificate ({_ssl_reason(exc)})")
            return False
        count = ctx.cert_store_stats()["x509_ca"]
        if count == 0:
            self.problems.append(f"{CA_CERT}: holds no CA certificate")
            return False
        out["ca_count"] = count
        return True

    def _load_pair(self, protocol: int, cert: str, key: str) -> ssl.SSLContext | None:
        if cert not in self.present or key not in self.present:
            return None
        ctx = ssl.SSLContext(protocol)
        try:
            ctx.load_cert_chain(self.paths[cert], self.paths[key])
        except ssl.SSLError as exc:
            if exc.reason == "KEY_VALUES_MISMATCH":
                self.problems.append(f"{key}: does not match {cert}")
            elif not _holds_certificate(self.paths[cert]):
                self.problems.append(f"{cert}: no PEM certificate")
            else:
                self.problems.append(f"{key}: no usable private key ({_ssl_reason(exc)})")
            return None
        except OSError as exc:
            self.problems.append(f"{cert}/{key}: unreadable ({_ssl_reason(exc)})")
            return None
        return ctx

    def _verifier(self, with_client_pair: bool) -> ssl.SSLContext:
        """A client context that trusts only ca.crt, for the in-memory checks.

        It checks chain, validity and purpose; host names are not part of a
        bundle's consistency (the real client contexts check them).
        """
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(cafile=self.paths[CA_CERT])
        if with_client_pair:
            ctx.load_cert_chain(self.paths[CLIENT_CERT], self.paths[CLIENT_KEY])
        return ctx

    def _check_server_leaf(self, server_pair: ssl.SSLContext, out: dict[str, Any]) -> bool:
        try:
            verifier = self._verifier(with_client_pair=False)
            side, exc, client_obj, _ = _handshake(server_pair, verifier)
        except (ssl.SSLError, OSError) as exc:
            self.problems.append(f"{SERVER_CERT}: check failed ({_ssl_reason(exc)})")
            return False
        if exc is not None:
            self.problems.append(f"{SERVER_CERT}: {_verify_problem(exc, 'serverAuth')}")
            return False
        peer = client_obj.getpeercert() or {}
        out["server_names"] = tuple(v for k, v in peer.get("subjectAltName", ()) if k in ("DNS", "IP Address"))
        out["server_not_after"] = peer.get("notAfter", "")
        return True

    def _check_client_leaf(self, client_pair: ssl.SSLContext, out: dict[str, Any]) -> ssl.SSLContext | None:
        try:
            server = _server_context(
                self.paths[SERVER_CERT], self.paths[SERVER_KEY], self.paths[CA_CERT]
            )
            verifier = self._verifier(with_client_pair=True)
            side, exc, _, server_obj = _handshake(server, verifier)
        except (ssl.SSLError, OSError) as exc:
            self.problems.append(f"{CLIENT_CERT}: check failed ({_ssl_reason(exc)})")
            return None
        if exc is not None:
            blamed = CLIENT_CERT if side == "server" else SERVER_CERT
            usage = "clientAuth" if side == "server" else "serverAuth"
            self.problems.append(f"{blamed}: {_verify_problem(exc, usage)}")
            return None
        peer = server_obj.getpeercert() or {}
        uris = [v for k, v in peer.get("subjectAltName", ()) if k == "URI"]
        cns = [v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName"]
        out["client_identity"] = uris[0] if uris else (f"CN={cns[0]}" if cns else "(no name)")
        out["not_after"] = _earlier(out.get("server_not_after", ""), peer.get("notAfter", ""))
        return server

    def _real_client_context(self) -> ssl.SSLContext:
        return _client_context(self.paths[CLIENT_CERT], self.paths[CLIENT_KEY], self.paths[CA_CERT])


def _server_context(cert: str, key: str, cafile: str | None = None) -> ssl.SSLContext:
    """A server context for ``cert``/``key``; with ``cafile``, client certs are required.

    No session tickets: a resumed session skips certificate checks, so after
    a rotation a ticket would let a client in on the trust of an older
    bundle. Every connection gets a full handshake against the current one.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.options |= ssl.OP_NO_TICKET
    ctx.num_tickets = 0
    ctx.load_cert_chain(cert, key)
    if cafile is not None:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cafile=cafile)
    return ctx


def _client_context(cert: str, key: str, cafile: str) -> ssl.SSLContext:
    """A client context presenting ``cert``/``key`` and trusting only ``cafile``."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED and check_hostname by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cafile=cafile)
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def _holds_certificate(path: str) -> bool:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=path)
    except (ssl.SSLError, OSError):
        return False
    return ctx.cert_store_stats()["x509"] > 0


def _verify_problem(exc: BaseException, usage: str) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        if exc.verify_code == _X509_INVALID_PURPOSE:
            return f"not valid for {usage} (extended key usage): {exc.verify_message}"
        return f"does not verify against {CA_CERT}: {exc.verify_message}"
    return f"TLS check against {CA_CERT} failed: {_ssl_reason(exc)}"


def _earlier(a: str, b: str) -> str:
    if not a or not b:
        return a or b
    try:
        return a if ssl.cert_time_to_seconds(a) <= ssl.cert_time_to_seconds(b) else b
    except ValueError:
        return a


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext):
    """Run a TLS handshake between two contexts through memory BIOs.

    Returns ``(side, error, client_obj, server_obj)``; ``side`` is "client" or
    "server" for the side that refused, and ``error`` is None on success.
    """
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_side=False)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client_done = server_done = False
    for _ in range(10):
        if not client_done:
            try:
                client.do_handshake()
                client_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return "client", exc, client, server
        s_in.write(c_out.read())
        if not server_done:
            try:
                server.do_handshake()
                server_done = True
            except ssl.SSLWantReadError:
                pass
            except ssl.SSLError as exc:
                return "server", exc, client, server
        c_in.write(s_out.read())
        if client_done and server_done:
            return None, None, client, server
    return "client", ssl.SSLError("handshake did not complete"), client, server

"""Test PKI made at test time with the openssl CLI, and bundles written like the controller does.

Nothing here is committed key material: a session fixture builds CAs and
leaves in a temporary directory. ``write_bundle`` writes a generation the
way the controller's AtomicWriter layout does (``..<ts>`` directory,
``..data`` swapped by one rename, visible names symlinked into ``..data``).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from crank_security.bundle import BUNDLE_FILES

SERVICE = "svc"
TRUST_DOMAIN = "crank.local"


@dataclass(frozen=True)
class Cert:
    cert: bytes  # PEM, the leaf followed by any intermediates
    key: bytes
    der: bytes  # the leaf alone, DER: what a peer sees as the served certificate

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.der).hexdigest()


class PKI:
    """CAs and leaves made with the openssl CLI in a temporary directory."""

    def __init__(self, root: Path):
        self.root = root
        self._n = 0
        if shutil.which("openssl") is None:
            pytest.fail("the openssl CLI is needed to build the test PKI")

    def _dir(self) -> Path:
        self._n += 1
        d = self.root / f"{self._n:03d}"
        d.mkdir()
        return d

    @staticmethod
    def _run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    def _key(self, d: Path, alg: str) -> Path:
        k = d / "key.pem"
        opts = {
            "ec": ["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
            "rsa": ["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
            "ed25519": ["-algorithm", "ED25519"],
        }[alg]
        self._run("genpkey", *opts, "-out", str(k))
        return k

    def ca(self, name: str, *, parent: Cert | None = None, alg: str = "ec") -> Cert:
        d = self._dir()
        key = self._key(d, alg)
        crt = d / "cert.pem"
        if parent is None:
            self._run(
                "req", "-x509", "-new", "-key", str(key), "-subj", f"/CN={name}", "-days", "2", "-out", str(crt),
                "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            )
            return self._load(crt, key, chain=b"")
        ext = "basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n"
        return self._sign(d, key, name, parent, ext, days="2")

    def leaf(
        self,
        ca: Cert,
        role: str,
        *,
        service: str = SERVICE,
        alg: str = "ec",
        days: str = "1",
        chain: bool = False,
    ) -> Cert:
        """A leaf for ``role`` "server" (serverAuth, DNS SANs) or "client"
        (clientAuth, SPIFFE URI); ``chain`` appends ``ca`` (an intermediate)."""
        d = self._dir()
        key = self._key(d, alg)
        usage = "digitalSignature,keyEncipherment" if alg == "rsa" else "digitalSignature"
        if role == "server":
            ext = f"extendedKeyUsage=serverAuth\nsubjectAltName=DNS:{service},DNS:localhost,IP:127.0.0.1\n"
        elif role == "client":
            ext = f"extendedKeyUsage=clientAuth\nsubjectAltName=URI:spiffe://{TRUST_DOMAIN}/service/{service}\n"
        else:
            raise ValueError(role)
        ext = f"basicConstraints=critical,CA:FALSE\nkeyUsage=critical,{usage}\n" + ext
        return self._sign(d, key, service, ca, ext, days=days, append_issuer=chain)

    def _sign(self, d: Path, key: Path, cn: str, ca: Cert, ext: str, *, days: str, append_issuer: bool = False) -> Cert:
        csr, crt, extfile = d / "req.csr", d / "cert.pem", d / "ext.cnf"
        ca_crt, ca_key = d / "issuer.pem", d / "issuer.key"
        ca_crt.write_bytes(_first_pem(ca.cert))
        ca_key.write_bytes(ca.key)
        extfile.write_text("[v3]\n" + ext)
        self._run("req", "-new", "-key", str(key), "-subj", f"/CN={cn}", "-out", str(csr))
        self._run(
            "x509", "-req", "-in", str(csr), "-CA", str(ca_crt), "-CAkey", str(ca_key),
            "-set_serial", "0x" + secrets.token_hex(8), "-days", days,
            "-extfile", str(extfile), "-extensions", "v3", "-out", str(crt),
        )
        return self._load(crt, key, chain=ca.cert if append_issuer else b"")

    @staticmethod
    def _load(crt: Path, key: Path, *, chain: bytes) -> Cert:
        pem = crt.read_bytes()
        der = ssl.PEM_cert_to_DER_cert(pem.decode())
        return Cert(cert=pem + chain, key=key.read_bytes(), der=der)


def _first_pem(pem: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----"
    return pem[: pem.index(end) + len(end)] + b"\n"


def bundle_files(server: Cert, client: Cert, *cas: Cert) -> dict[str, bytes]:
    """The five files of a bundle; ca.crt is the concatenation of ``cas``."""
    return {
        "tls.crt": server.cert,
        "tls.key": server.key,
        "client.crt": client.cert,
        "client.key": client.key,
        "ca.crt": b"".join(_first_pem(c.cert) for c in cas),
    }


def write_bundle(service_dir: Path, files: dict[str, bytes], *, remove_old: bool = True) -> str:
    """Write ``files`` as a new generation and swap ``..data`` to it atomically.

    Files left out of ``files`` are absent from the generation (their
    visible symlinks dangle), as in a damaged bundle.
    """
    service_dir.mkdir(parents=True, exist_ok=True)
    gen = "..%s.%s" % (time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime()), secrets.token_hex(6))
    gen_dir = service_dir / gen
    gen_dir.mkdir()
    for name, data in files.items():
        path = gen_dir / name
        path.write_bytes(data)
        os.chmod(path, 0o600 if name.endswith(".key") else 0o644)
    data_link = service_dir / "..data"
    old = os.readlink(data_link) if os.path.islink(data_link) else None
    tmp = service_dir / "..data_tmp"
    os.symlink(gen, tmp)
    os.replace(tmp, data_link)
    for name in BUNDLE_FILES:
        link = service_dir / name
        if not os.path.islink(link):
            os.symlink(f"..data/{name}", link)
    if remove_old and old:
        shutil.rmtree(service_dir / old)
    return gen


@dataclass
class Material:
    """The session's PKI: two CAs and bundles from each."""

    pki: PKI
    ca1: Cert
    ca2: Cert
    server1: Cert
    client1: Cert
    server1b: Cert  # a renewal under ca1
    client1b: Cert
    server2: Cert  # under ca2
    client2: Cert

    def bundle1(self) -> dict[str, bytes]:
        return bundle_files(self.server1, self.client1, self.ca1)

    def bundle1b(self) -> dict[str, bytes]:
        return bundle_files(self.server1b, self.client1b, self.ca1)

    def bundle2(self) -> dict[str, bytes]:
        return bundle_files(self.server2, self.client2, self.ca2)


@pytest.fixture(scope="session")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    pki = PKI(tmp_path_factory.mktemp("pki"))
    ca1, ca2 = pki.ca("test-ca-1"), pki.ca("test-ca-2")
    return Material(
        pki=pki, ca1=ca1, ca2=ca2,
        server1=pki.leaf(ca1, "server"), client1=pki.leaf(ca1, "client"),
        server1b=pki.leaf(ca1, "server"), client1b=pki.leaf(ca1, "client"),
        server2=pki.leaf(ca2, "server"), client2=pki.leaf(ca2, "client"),
    )


@pytest.fixture
def certs_dir(tmp_path: Path) -> Path:
    """The service's own bundle directory (not yet created)."""
    return tmp_path / "certs" / SERVICE


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CRANK_ENVIRONMENT", "CRANK_CERTS_DIR", "SERVICE_HTTPS_PORT", "SERVICE_PORT", "CRANK_SERVICE_NAME"):
        monkeypatch.delenv(name, raising=False)


def client_context(client: Cert | None, *cas: Cert, tmp: Path) -> ssl.SSLContext:
    """A test client: trusts ``cas`` only, presents ``client`` if given."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cadata=b"".join(_first_pem(c.cert) for c in cas).decode())
    if client is not None:
        d = tmp / secrets.token_hex(4)
        d.mkdir()
        (d / "c.pem").write_bytes(client.cert)
        (d / "k.pem").write_bytes(client.key)
        ctx.load_cert_chain(d / "c.pem", d / "k.pem")
    return ctx


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@contextlib.contextmanager
def running_uvicorn(config, sock: socket.socket):
    """Run a uvicorn Server for ``config`` on ``sock`` in a thread."""
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()

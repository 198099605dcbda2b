"""Reading and checking one bundle generation (crank_security.bundle)."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from conftest import SERVICE, TRUST_DOMAIN, Material, bundle_files, write_bundle

from crank_security import SecurityLevel, assess
from crank_security.bundle import generation_key


def test_complete_bundle_is_mtls(material: Material, certs_dir: Path) -> None:
    gen = write_bundle(certs_dir, material.bundle1())
    a = assess(certs_dir)
    assert a.problems == ()
    assert a.level is SecurityLevel.MTLS
    assert a.generation == gen
    assert a.bundle is not None
    assert a.bundle.client_identity == f"spiffe://{TRUST_DOMAIN}/service/{SERVICE}"
    assert a.bundle.ca_count == 1
    assert "localhost" in a.bundle.server_names
    assert a.bundle.not_after.endswith("GMT")


def test_each_generation_is_read_whole_and_once(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    k1 = generation_key(certs_dir)
    assert generation_key(certs_dir) == k1
    write_bundle(certs_dir, material.bundle1b())
    assert generation_key(certs_dir) != k1


@pytest.mark.parametrize(
    ("change", "want"),
    [
        ({"tls.key": "client1.key"}, "tls.key: does not match tls.crt"),
        ({"client.key": "server1.key"}, "client.key: does not match client.crt"),
        ({"ca.crt": "ca2"}, "tls.crt: does not verify against ca.crt"),
        ({"tls.crt": "client1.crt", "tls.key": "client1.key"}, "tls.crt: not valid for serverAuth"),
        ({"client.crt": "server1.crt", "client.key": "server1.key"}, "client.crt: not valid for clientAuth"),
        ({"client.crt": "client2.crt", "client.key": "client2.key"}, "client.crt: does not verify against ca.crt"),
        ({"ca.crt": b"not a certificate\n"}, "ca.crt: no usable certificate"),
        ({"tls.crt": b"garbage\n"}, "tls.crt: no PEM certificate"),
        ({"tls.key": b"garbage\n"}, "tls.key: no usable private key"),
        ({"client.key": b""}, "client.key: empty"),
        ({"tls.key": None}, "tls.key: missing"),
    ],
    ids=[
        "server-key-mismatch", "client-key-mismatch", "wrong-ca", "server-lacks-serverAuth",
        "client-lacks-clientAuth", "client-from-other-ca", "garbage-ca", "garbage-cert", "garbage-key",
        "empty-key", "missing-key",
    ],
)
def test_inconsistent_bundles_are_named(material: Material, certs_dir: Path, change: dict, want: str) -> None:
    sources = {
        "client1.key": material.client1.key, "server1.key": material.server1.key,
        "client1.crt": material.client1.cert, "server1.crt": material.server1.cert,
        "client2.crt": material.client2.cert, "client2.key": material.client2.key,
        "ca2": material.ca2.cert,
    }
    files = material.bundle1()
    for name, value in change.items():
        if value is None:
            del files[name]
        else:
            files[name] = sources[value] if isinstance(value, str) else value
    write_bundle(certs_dir, files)
    a = assess(certs_dir)
    assert not a.complete
    assert any(p.startswith(want) for p in a.problems), a.problems
    assert a.level < SecurityLevel.MTLS


def test_server_pair_alone_supports_tls(material: Material, certs_dir: Path) -> None:
    files = material.bundle1()
    del files["client.key"]
    write_bundle(certs_dir, files)
    a = assess(certs_dir)
    assert a.level is SecurityLevel.TLS
    assert a.problems == ("client.key: missing",)


def test_trust_bundle_with_two_cas_during_rollover(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, bundle_files(material.server1, material.client2, material.ca1, material.ca2))
    a = assess(certs_dir)
    assert a.complete, a.problems
    assert a.bundle is not None and a.bundle.ca_count == 2


def test_leaves_followed_by_intermediates(material: Material, certs_dir: Path) -> None:
    pki = material.pki
    inter = pki.ca("test-intermediate", parent=material.ca1)
    server = pki.leaf(inter, "server", chain=True)
    client = pki.leaf(inter, "client", chain=True)
    write_bundle(certs_dir, bundle_files(server, client, material.ca1))
    a = assess(certs_dir)
    assert a.complete, a.problems

    bare = pki.leaf(inter, "server", chain=False)
    write_bundle(certs_dir, bundle_files(bare, client, material.ca1))
    a = assess(certs_dir)
    assert any(p.startswith("tls.crt: does not verify against ca.crt") for p in a.problems), a.problems


@pytest.mark.parametrize("alg", ["rsa", "ed25519"])
def test_other_key_algorithms(material: Material, certs_dir: Path, alg: str) -> None:
    pki = material.pki
    ca = pki.ca(f"test-ca-{alg}", alg=alg)
    write_bundle(certs_dir, bundle_files(pki.leaf(ca, "server", alg=alg), pki.leaf(ca, "client", alg=alg), ca))
    a = assess(certs_dir)
    assert a.complete, a.problems


def test_expired_leaf(material: Material, certs_dir: Path) -> None:
    expired = material.pki.leaf(material.ca1, "server", days="0")  # notAfter == notBefore == now
    time.sleep(1.1)
    write_bundle(certs_dir, bundle_files(expired, material.client1, material.ca1))
    a = assess(certs_dir)
    assert any("tls.crt: does not verify against ca.crt: certificate has expired" in p for p in a.problems), a.problems


def test_plain_directory_without_data_link(material: Material, certs_dir: Path) -> None:
    certs_dir.mkdir(parents=True)
    for name, data in material.bundle1().items():
        (certs_dir / name).write_bytes(data)
    a = assess(certs_dir)
    assert a.complete, a.problems
    assert a.generation is None


def test_a_fifo_is_never_opened(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    target = certs_dir / os.readlink(certs_dir / "..data") / "ca.crt"
    target.unlink()
    os.mkfifo(target)
    a = assess(certs_dir)  # would block forever if it opened the FIFO
    assert "ca.crt: not a regular file" in a.problems


def test_no_directory_and_dangling_data_link(material: Material, certs_dir: Path) -> None:
    assert assess(certs_dir).problems == (f"no bundle directory {certs_dir}",)
    gen = write_bundle(certs_dir, material.bundle1())
    shutil.rmtree(certs_dir / gen)
    assert assess(certs_dir).problems == (f"..data -> {gen}: no such generation",)


def test_contexts_outlive_the_generation_files(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    a = assess(certs_dir)
    write_bundle(certs_dir, material.bundle1b())  # removes the first generation
    assert a.bundle is not None
    assert a.bundle.server_context.cert_store_stats()["x509_ca"] == 1

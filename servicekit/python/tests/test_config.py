"""Levels, environments, locating the bundle and waiting for it (crank_security.config)."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pytest
from conftest import SERVICE, Material, write_bundle

import crank_security.config as config_module
from crank_security import AntiFragileSecurityConfig, CertificatesUnavailable, Environment, SecurityLevel


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "crank_security" and r.levelno == logging.WARNING]


def test_levels_order_by_strength() -> None:
    assert SecurityLevel.MTLS > SecurityLevel.TLS > SecurityLevel.PLAIN > SecurityLevel.DOWN
    assert max([SecurityLevel.PLAIN, SecurityLevel.MTLS, SecurityLevel.TLS]) is SecurityLevel.MTLS
    assert SecurityLevel.TLS >= "tls" and SecurityLevel.PLAIN < "tls"
    assert SecurityLevel.MTLS == "mtls" and f"{SecurityLevel.MTLS}" == "mtls"


def test_environment_from_argument_and_variable(monkeypatch: pytest.MonkeyPatch, certs_dir: Path) -> None:
    assert AntiFragileSecurityConfig(SERVICE, certs_dir=certs_dir).environment is Environment.DEVELOPMENT
    assert AntiFragileSecurityConfig(SERVICE, " Production ", certs_dir=certs_dir).production
    monkeypatch.setenv("CRANK_ENVIRONMENT", "production")
    assert AntiFragileSecurityConfig(SERVICE, certs_dir=certs_dir).production
    assert not AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir).production
    monkeypatch.setenv("CRANK_ENVIRONMENT", "prod")
    with pytest.raises(ValueError, match="CRANK_ENVIRONMENT='prod' is not valid"):
        AntiFragileSecurityConfig(SERVICE)


@pytest.mark.parametrize("name", ["", "../etc", "a/b", ".hidden", "x" * 300, None])
def test_service_names_that_could_escape_are_refused(name) -> None:
    with pytest.raises(ValueError, match="service name"):
        AntiFragileSecurityConfig(name)


def test_bundle_location(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, material: Material) -> None:
    first, second = tmp_path / "certs", tmp_path / "etc-certs"
    monkeypatch.setattr(config_module, "DEFAULT_ROOTS", (first, second))
    assert AntiFragileSecurityConfig(SERVICE).certs_dir == first / SERVICE  # nothing anywhere yet
    write_bundle(second / SERVICE, material.bundle1())
    assert AntiFragileSecurityConfig(SERVICE).certs_dir == second / SERVICE  # the one with a bundle
    (first / SERVICE).mkdir(parents=True)
    assert AntiFragileSecurityConfig(SERVICE).certs_dir == second / SERVICE  # an empty dir does not win
    monkeypatch.setenv("CRANK_CERTS_DIR", str(tmp_path / "mine"))
    assert AntiFragileSecurityConfig(SERVICE).certs_dir == tmp_path / "mine"  # the service's own directory
    assert AntiFragileSecurityConfig(SERVICE, certs_dir=tmp_path / "arg").certs_dir == tmp_path / "arg"


def test_level_detection(material: Material, certs_dir: Path) -> None:
    dev = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir)
    prod = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    assert dev.get_security_level() is SecurityLevel.PLAIN
    with pytest.raises(CertificatesUnavailable, match="no bundle directory"):
        prod.get_security_level()

    files = material.bundle1()
    del files["client.crt"]
    write_bundle(certs_dir, files)
    assert dev.get_security_level() is SecurityLevel.TLS
    with pytest.raises(CertificatesUnavailable, match="client.crt: missing"):
        prod.get_security_level()

    write_bundle(certs_dir, material.bundle1())
    assert dev.get_security_level() is SecurityLevel.MTLS
    assert prod.get_security_level() is SecurityLevel.MTLS


def test_ensure_returns_at_once_when_complete(material: Material, certs_dir: Path) -> None:
    write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    start = time.monotonic()
    assert security.ensure_certificates(5) is SecurityLevel.MTLS
    assert time.monotonic() - start < 0.5


def test_ensure_waits_for_a_bundle_that_arrives_at_first_boot(material: Material, certs_dir: Path) -> None:
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    files = material.bundle1()
    partial = {k: v for k, v in files.items() if k != "client.key"}
    threading.Timer(0.2, write_bundle, (certs_dir, partial)).start()  # the directory appears half-done
    threading.Timer(0.5, write_bundle, (certs_dir, files)).start()
    start = time.monotonic()
    assert security.ensure_certificates(5) is SecurityLevel.MTLS
    assert 0.4 < time.monotonic() - start < 2
    assert "after waiting" in security.describe()


def test_production_raises_after_the_timeout_naming_what_is_missing(material: Material, certs_dir: Path) -> None:
    files = material.bundle1()
    del files["tls.key"]
    write_bundle(certs_dir, files)
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    start = time.monotonic()
    with pytest.raises(CertificatesUnavailable) as info:
        security.ensure_certificates(0.5)
    assert 0.5 <= time.monotonic() - start < 1.5
    assert "tls.key: missing" in str(info.value)
    assert str(certs_dir) in str(info.value) and "production" in str(info.value)
    assert info.value.problems[0] == "tls.key: missing"


def test_development_degrades_with_exactly_one_warning(
    material: Material, certs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    security = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir)
    assert security.ensure_certificates(0.3) is SecurityLevel.PLAIN
    assert security.ensure_certificates(0.3) is SecurityLevel.PLAIN  # settled: no second wait or warning
    assert security.get_security_level() is SecurityLevel.PLAIN
    write_bundle(certs_dir, material.bundle1())
    assert security.get_security_level() is SecurityLevel.PLAIN  # settled at start; a restart upgrades
    security.announce()
    security.announce()
    warnings = warnings_of(caplog)
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert f"no bundle directory {certs_dir}" in warnings[0].getMessage()
    starts = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert starts == [f"{SERVICE}: security level plain: development (argument), no complete bundle in "
                      f"{certs_dir} after 0.3s: no bundle directory {certs_dir}"]


def test_development_with_a_server_pair_degrades_to_tls(
    material: Material, certs_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    files = material.bundle1()
    del files["client.key"]
    write_bundle(certs_dir, files)
    security = AntiFragileSecurityConfig(SERVICE, certs_dir=certs_dir)  # CRANK_ENVIRONMENT unset
    assert security.ensure_certificates(0.2) is SecurityLevel.TLS
    (warning,) = warnings_of(caplog)
    assert "client.key: missing" in warning.getMessage()
    assert "continuing at tls" in warning.getMessage()


def test_start_line_at_mtls(material: Material, certs_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="crank_security")
    gen = write_bundle(certs_dir, material.bundle1())
    security = AntiFragileSecurityConfig(SERVICE, "production", certs_dir=certs_dir)
    security.ensure_certificates(1)
    security.announce()
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.startswith(f"{SERVICE}: security level mtls (bundle complete at {certs_dir}, generation {gen};")
    assert "spiffe://crank.local/service/svc" in line


def test_health_check_config_follows_the_environment(monkeypatch: pytest.MonkeyPatch, certs_dir: Path) -> None:
    prod = AntiFragileSecurityConfig(SERVICE, "production").get_health_check_config()
    assert prod["test"] == [
        "CMD", "python3", "-m", "crank_security.healthcheck", "--service", SERVICE,
        "--https-port", "8443", "--path", "/health",
    ]
    assert set(prod) == {"test", "interval", "timeout", "retries", "start_period"}
    monkeypatch.setenv("SERVICE_HTTPS_PORT", "9443")
    monkeypatch.setenv("SERVICE_PORT", "9080")
    dev = AntiFragileSecurityConfig(SERVICE, "development", certs_dir=certs_dir).get_health_check_config()
    assert dev["test"] == [
        "CMD", "python3", "-m", "crank_security.healthcheck", "--service", SERVICE,
        "--https-port", "9443", "--path", "/health", "--certs-dir", str(certs_dir), "--http-port", "9080",
    ]
    monkeypatch.setenv("SERVICE_PORT", "http")
    with pytest.raises(ValueError, match="SERVICE_PORT='http' is not a TCP port"):
        AntiFragileSecurityConfig(SERVICE, "development").get_health_check_config()

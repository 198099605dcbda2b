"""``python3 -m crank_security.healthcheck``: the compose HEALTHCHECK of a service using this kit.

It sends ``GET https://<host>:<https-port><path>`` presenting client.crt and
verifying the server against ca.crt only, host name included: an mTLS
service asks that of every client, its healthcheck too. In development, if
that fails or the bundle is incomplete, and ``--http-port`` is given, it tries
plain HTTP and prints that it downgraded; in production it never does. Exit
status: 0 healthy, 1 unhealthy, 2 usage error.

Standard library only (``http.client``): a check that runs every few seconds
should not import httpx. It talks to the service's own port on ``--host``
(default localhost, a name the controller puts in every server certificate)
and reads the service's bundle directory.
"""

from __future__ import annotations

import argparse
import http.client
import os
import ssl
import sys
from typing import TextIO

from .config import DEFAULT_HTTPS_PORT, AntiFragileSecurityConfig, env_port

__all__ = ["main"]

READ_LIMIT = 4096


def _get(host: str, port: int, path: str, timeout: float, context: ssl.SSLContext | None) -> str | None:
    """GET once; None when the answer is 200, else why not."""
    if context is not None:
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "crank-security-healthcheck"})
        response = conn.getresponse()
        response.read(READ_LIMIT)
        if response.status != 200:
            return f"status {response.status}"
        return None
    except (OSError, http.client.HTTPException) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


def main(argv: list[str] | None = None, *, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    parser = argparse.ArgumentParser(
        prog="python3 -m crank_security.healthcheck",
        description="Health check over mTLS with the service's own client certificate.",
    )
    parser.add_argument("--service", default=os.environ.get("CRANK_SERVICE_NAME"),
                        help="service name (default $CRANK_SERVICE_NAME); locates the bundle")
    parser.add_argument("--certs-dir", help="the service's bundle directory (default as AntiFragileSecurityConfig)")
    parser.add_argument("--host", default="localhost")
    parser.add_argument("--https-port", type=int, help="default $SERVICE_HTTPS_PORT, else 8443")
    parser.add_argument("--http-port", type=int, help="plain HTTP fallback, development only")
    parser.add_argument("--path", default="/health")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds per request")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return 2 if exc.code else 0
    if not args.service:
        print("healthcheck: --service (or CRANK_SERVICE_NAME) is required", file=err)
        return 2
    try:
        security = AntiFragileSecurityConfig(args.service, certs_dir=args.certs_dir)
        https_port = args.https_port or env_port("SERVICE_HTTPS_PORT", DEFAULT_HTTPS_PORT)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=err)
        return 2

    a = security.assess()
    https_url = f"https://{args.host}:{https_port}{args.path}"
    if a.bundle is not None:
        problem = _get(args.host, https_port, args.path, args.timeout, a.bundle.client_context)
        if problem is None:
            print(f"healthy: {https_url} (mtls, bundle generation {a.generation or '(plain files)'})", file=out)
            return 0
        print(f"unhealthy: {https_url}: {problem}", file=err)
    else:
        print(f"unhealthy: cannot check {https_url}: no complete bundle in {a.directory}: {a.summary()}", file=err)

    if security.production or args.http_port is None:
        return 1
    http_url = f"http://{args.host}:{args.http_port}{args.path}"
    problem = _get(args.host, args.http_port, args.path, args.timeout, None)
    if problem is not None:
        print(f"unhealthy: {http_url}: {problem}", file=err)
        return 1
    print(f"healthy over plain HTTP (a downgrade, allowed in development only): {http_url}", file=out)
    return 0


if __name__ == "__main__":
    sys.exit(main())

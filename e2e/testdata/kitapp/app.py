"""The e2e tests' Python service: FastAPI on the crank_security kit, or on the
load-once pattern the kit replaces, so both can be measured side by side.

Environment:
  SERVICE_NAME   compose service; its bundle is found by the kit (/certs/<name>)
  KIT_RELOAD     "watch" (default): the kit's uvicorn helper and adaptive
                 client, which take each new bundle without a restart.
                 "off": certificates loaded once at start (uvicorn's ssl_*
                 options and an httpx client built once, both verifying
                 against ca.crt), so a new bundle needs a restart.
  CALL_URL       if set, GET it every CALL_INTERVAL seconds over mTLS and
                 print one JSON line per call: {"msg": "call", "ok": ...}
  CALL_INTERVAL  seconds between calls, default 0.2
  CERT_TIMEOUT   seconds the kit waits for the bundle at start, default 30

It serves GET /health and GET /stats (this process's call counters) on
8443, or on 8080 when a development service degraded to plain.
"""

import asyncio
import json
import os
import ssl
import sys
import time

import httpx
import uvicorn
from fastapi import FastAPI

from crank_security import AntiFragileSecurityConfig, install_security, serve

SERVICE = os.environ["SERVICE_NAME"]
RELOAD = os.environ.get("KIT_RELOAD", "watch")
CALL_URL = os.environ.get("CALL_URL", "")
CALL_INTERVAL = float(os.environ.get("CALL_INTERVAL", "0.2"))
CERT_TIMEOUT = float(os.environ.get("CERT_TIMEOUT", "30"))
CERTS = f"/certs/{SERVICE}"

app = FastAPI()
stats = {"ok": 0, "failed": 0, "last_error": "", "started_at": time.time()}


@app.get("/health")
async def health():
    return {"status": "ok", "service": SERVICE}


@app.get("/stats")
async def get_stats():
    return stats


def record(ok, error=""):
    stats["ok" if ok else "failed"] += 1
    if error:
        stats["last_error"] = error
    print(json.dumps({"msg": "call", "ok": ok, "at": time.time(), "error": error}), flush=True)


async def call_forever(client):
    while True:
        began = time.monotonic()
        try:
            r = await client.get(CALL_URL)
            record(r.status_code == 200, "" if r.status_code == 200 else f"status {r.status_code}")
        except Exception as exc:  # any failure is a failed call: that is what is counted
            record(False, f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(max(0.0, CALL_INTERVAL - (time.monotonic() - began)))


def start_calls(get_client):
    if not CALL_URL:
        return

    @app.on_event("startup")
    async def begin():
        app.state.caller = asyncio.create_task(call_forever(get_client()))


def run_kit():
    security = AntiFragileSecurityConfig(SERVICE)
    install_security(app, security, timeout=CERT_TIMEOUT)
    start_calls(lambda: app.state.crank_client)
    serve(app, security, timeout=CERT_TIMEOUT, access_log=False)


def run_load_once():
    client_ctx = ssl.create_default_context(cafile=f"{CERTS}/ca.crt")
    client_ctx.load_cert_chain(f"{CERTS}/client.crt", f"{CERTS}/client.key")
    start_calls(lambda: httpx.AsyncClient(verify=client_ctx, timeout=2.0))
    uvicorn.run(
        app, host="0.0.0.0", port=8443, access_log=False,
        ssl_certfile=f"{CERTS}/tls.crt", ssl_keyfile=f"{CERTS}/tls.key",
        ssl_ca_certs=f"{CERTS}/ca.crt", ssl_cert_reqs=ssl.CERT_REQUIRED,
    )


if __name__ == "__main__":
    if RELOAD == "watch":
        run_kit()
    elif RELOAD == "off":
        run_load_once()
    else:
        sys.exit(f"KIT_RELOAD={RELOAD!r}: use watch or off")

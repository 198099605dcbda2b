"""A worker: serves its own /health over mTLS and calls the platform.

Its client is the kit's adaptive client (app.state.crank_client): it
presents the worker's client certificate, trusts only ca.crt (never
verify=False), and after a rotation opens new connections with the new
bundle, with no restart.
"""

import asyncio
import logging
import os

import httpx
from fastapi import FastAPI

from crank_security import AntiFragileSecurityConfig, install_security, serve

# Its own logger only: a handler on the root logger would print uvicorn's
# lines twice, and serve() gives the kit's logger one when the root has none.
log = logging.getLogger("worker")
log.addHandler(logging.StreamHandler())
log.handlers[0].setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
log.setLevel(logging.INFO)

PLATFORM_URL = os.environ.get("PLATFORM_URL", "https://platform:8443/v1/jobs")
INTERVAL = float(os.environ.get("CALL_INTERVAL", "2"))

security = AntiFragileSecurityConfig("worker")
app = FastAPI()
install_security(app, security)  # sets app.state.crank_client at startup


async def call_platform() -> None:
    ok = failed = 0
    while True:
        try:
            response = await app.state.crank_client.get(PLATFORM_URL)
            response.raise_for_status()
            ok += 1
            if ok == 1 or ok % 30 == 0:
                log.info("platform calls: %d ok, %d failed (last: %s)", ok, failed, response.json())
        except httpx.HTTPError as exc:
            failed += 1
            log.warning("platform call failed (%d so far): %s", failed, exc)
        await asyncio.sleep(INTERVAL)


@app.on_event("startup")
async def start_calling() -> None:  # runs after install_security's own startup
    app.state.caller = asyncio.create_task(call_platform())


@app.get("/health")
async def health():
    return {"status": "ok", "service": "worker"}


if __name__ == "__main__":
    serve(app, security, access_log=False)

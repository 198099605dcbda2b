"""The platform (not platform.py, which would shadow the standard library's
platform module): a FastAPI service that peers call over mTLS.

Everything about certificates is the kit's: serve() waits for the bundle
the controller writes to /certs/platform, logs one line saying what it
serves and why, and serves mTLS with it; each new bundle (a renewal, a CA
rollover phase) is taken on the next handshake, with no restart.
"""

from fastapi import FastAPI

from crank_security import AntiFragileSecurityConfig, install_security, serve

security = AntiFragileSecurityConfig("platform")  # the environment comes from CRANK_ENVIRONMENT
app = FastAPI()
install_security(app, security, client=False)  # it calls nobody


@app.get("/health")
async def health():
    return {"status": "ok", "service": "platform"}


@app.get("/v1/jobs")
async def jobs():
    return {"jobs": ["convert", "classify", "parse"]}


if __name__ == "__main__":
    serve(app, security, access_log=False)

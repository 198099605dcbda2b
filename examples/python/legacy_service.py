"""A legacy service that speaks only plain HTTP and does not use the kit.

Its compose labels say so (crank.security.level: plain): in development the
controller reports it at plain instead of restarting it again and again; in
production the floor is mtls, and it is reported below it.
"""

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/health")
async def health():
    return {"status": "ok", "service": "legacy"}


if __name__ == "__main__":
    uvicorn.run(app, host="0.0.0.0", port=8080, access_log=False)

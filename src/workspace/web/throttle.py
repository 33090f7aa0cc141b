"""Login throttling per account and per client address, in the app's store (Redis in production).

The client is the socket peer (uvicorn runs without proxy-header rewriting unless trusted proxies are
configured), so a forged ``X-Forwarded-For`` changes nothing.
"""

from __future__ import annotations

import math
import time

from litestar.stores.base import Store

__all__ = ["LoginThrottle"]


class LoginThrottle:
    def __init__(self, store: Store, *, max_failures: int, window: int, client_factor: int = 4) -> None:
        self.store = store
        self.max_failures = max_failures
        self.client_max = max_failures * client_factor
        self.window = window

    @staticmethod
    def _keys(email: str, client: str) -> tuple[str, str]:
        return f"login:acct:{email.strip().lower()}", f"login:client:{client}"

    async def _read(self, key: str) -> list[float]:
        raw = await self.store.get(key)
        if not raw:
            return []
        now = time.time()
        return [float(x) for x in raw.decode().split(",") if x and now - float(x) < self.window]

    async def retry_after(self, email: str, client: str) -> int:
        """Seconds until another attempt is allowed (0 = allowed now)."""
        acct_key, client_key = self._keys(email, client)
        waits = []
        for key, limit in ((acct_key, self.max_failures), (client_key, self.client_max)):
            stamps = await self._read(key)
            if len(stamps) >= limit:
                waits.append(math.ceil(self.window - (time.time() - sorted(stamps)[-limit])))
        return max(waits, default=0)

    async def failed(self, email: str, client: str) -> None:
        for key in self._keys(email, client):
            stamps = await self._read(key)
            stamps.append(time.time())
            await self.store.set(key, ",".join(f"{s:.3f}" for s in stamps[-100:]), expires_in=self.window)

    async def succeeded(self, email: str) -> None:
        await self.store.delete(self._keys(email, "")[0])

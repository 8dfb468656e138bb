"""ASGI middleware that protects the service before a request reaches a route.

- `ApiKeyGuard`: with a key set, every route but `/healthz` needs it, as the `X-API-Key` header,
  `Authorization: Bearer KEY`, the `vidlens_api_key` cookie, or `?api_key=KEY` (which also sets the
  cookie, so the web page's images and `/docs` work in a browser).
- `BodyLimit`: a request body larger than the limit gets 413 before it is read (by its
  Content-Length) or as soon as it crosses the limit (chunked uploads); nothing is kept.
"""

from __future__ import annotations

import json
import secrets
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import parse_qs

COOKIE = "vidlens_api_key"
OPEN_PATHS = ("/healthz",)


async def _send_json(send: Any, status: int, body: dict[str, Any], headers: list[tuple[bytes, bytes]] | None = None) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *(headers or [])]})
    await send({"type": "http.response.body", "body": data})


class ApiKeyGuard:
    def __init__(self, app: Any, api_key: str | None) -> None:
        self.app, self.api_key = app, api_key

    def _presented(self, scope: dict[str, Any]) -> tuple[str | None, bool]:
        """The key the request carries, and whether it came in the query string."""
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if "x-api-key" in headers:
            return headers["x-api-key"], False
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            return auth[7:].strip(), False
        query = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("api_key")
        if query:
            return query[0], True
        if "cookie" in headers:
            cookie = SimpleCookie()
            try:
                cookie.load(headers["cookie"])
            except Exception:  # noqa: BLE001 - a malformed cookie header is just no key
                return None, False
            if COOKIE in cookie:
                return cookie[COOKIE].value, False
        return None, False

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or self.api_key is None or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        key, from_query = self._presented(scope)
        if key is None or not secrets.compare_digest(key.encode(), self.api_key.encode()):
            await _send_json(send, 401, {"detail": "missing or wrong API key: send it as the X-API-Key header "
                                                   "(or Authorization: Bearer KEY)"}, [(b"www-authenticate", b"Bearer")])
            return
        if not from_query:
            await self.app(scope, receive, send)
            return

        async def send_with_cookie(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={key}; Path=/; HttpOnly; SameSite=Strict".encode("latin-1")
                message = {**message, "headers": [*message.get("headers", []), (b"set-cookie", cookie)]}
            await send(message)

        await self.app(scope, receive, send_with_cookie)


class BodyLimit:
    def __init__(self, app: Any, max_bytes: int, limit_mb: float) -> None:
        self.app, self.max_bytes, self.limit_mb = app, max_bytes, limit_mb  # limit_mb: the file limit, as users know it

    def _too_large(self) -> dict[str, Any]:
        return {"detail": f"upload too large: the limit is {self.limit_mb:g} MB"}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name.lower() == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])
                return
        received = 0
        exceeded = False
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received, exceeded
            if exceeded:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    exceeded = True
                    return {"type": "http.disconnect"}  # the app stops reading; we answer 413 below
            return message

        async def guarded_send(message: dict[str, Any]) -> None:
            nonlocal started
            if exceeded:
                return  # whatever the app says about the cut body is replaced by the 413
            started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await _send_json(send, 413, self._too_large(), [(b"connection", b"close")])

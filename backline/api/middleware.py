"""ASGI middleware: request ids and structured access logs; bearer-aware CSRF."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

import structlog
from litestar.enums import ScopeType
from litestar.middleware.csrf import CSRFMiddleware
from litestar.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("backline.http")

_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestIdMiddleware:
    """Binds a request id (from ``X-Request-ID`` when sane, else new) to every log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        incoming = ""
        for name, value in scope.get("headers", []):
            if name == b"x-request-id":
                incoming = value.decode("latin-1")
                break
        request_id = incoming if _REQUEST_ID_RE.match(incoming or "") else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        started = time.perf_counter()
        status_holder: dict[str, int] = {}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            principal = scope.get("state", {}).get("principal")
            log.info(
                "http_request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status_holder.get("status"),
                duration_ms=round((time.perf_counter() - started) * 1000, 2),
                principal=str(principal.account_id) if principal is not None else None,
            )


class BearerAwareCSRFMiddleware(CSRFMiddleware):
    """CSRF for cookie-authenticated requests only.

    A request carrying ``Authorization`` (bearer token, API key) cannot be forged by a
    third-party page — browsers never attach it on their own — so it skips the check.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            for name, _value in scope.get("headers", []):
                if name in (b"authorization", b"x-api-key", b"x-mcp-upload-token"):
                    await self.app(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


def header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return str(value.decode("latin-1"))
    return None


__all__: list[Any] = ["BearerAwareCSRFMiddleware", "RequestIdMiddleware", "header"]

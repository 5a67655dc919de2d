"""Rate limiting per principal, sized per route family, shared by every replica.

Built on the ``limits`` library (fixed windows) over
:class:`~backline.projections.ratelimits.SqlRateLimitStorage` (the read database), so
every worker process and replica counts against the same window.

Reusable from any handler or tool::

    from backline.api.ratelimit import enforce
    enforce(services.rate_limits, "10 per 120 seconds", "cover_art_generate", f"acct:{id}")

``enforce`` raises :class:`~backline.domain.errors.RateLimited` (REST → 429 with
``Retry-After``; MCP → JSON-RPC ``error.code = 429`` with ``error.data.retryAfterSeconds``).
``check`` returns the decision without raising; ``decision.headers()`` gives
``X-RateLimit-Limit/Remaining/Reset`` (and ``Retry-After`` when refused).

:class:`RateLimitMiddleware` applies the seed-002 families to ``/api/v1/*`` (reads
300/60s, writes 60/60s per API key, or per client IP when no valid key is presented)
and a per-IP budget to the sign-in and OAuth endpoints (brute force, registration spam).
``/api/v1/agent/*`` (public licensing API) is left to its own policy.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import msgspec
import structlog
from limits import RateLimitItem, parse
from limits.storage import Storage
from limits.strategies import FixedWindowRateLimiter
from litestar import Request
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from backline.api.deps import ApiConfig
from backline.domain.errors import DomainError, RateLimited

log = structlog.get_logger(__name__)

_ITEMS: dict[str, RateLimitItem] = {}


def _item(limit: str) -> RateLimitItem:
    item = _ITEMS.get(limit)
    if item is None:
        item = _ITEMS[limit] = parse(limit)
    return item


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_at: int  # epoch seconds when the window resets
    retry_after: int  # seconds (0 when allowed)

    def headers(self) -> dict[str, str]:
        headers = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset_at),
        }
        if not self.allowed:
            headers["Retry-After"] = str(self.retry_after)
        return headers


def check(storage: Storage, limit: str, family: str, *identity: str) -> RateDecision:
    """Count one hit against ``family`` for ``identity`` and report the window."""
    item = _item(limit)
    limiter = FixedWindowRateLimiter(storage)
    allowed = limiter.hit(item, family, *identity)
    stats = limiter.get_window_stats(item, family, *identity)
    now = time.time()
    reset_at = max(math.ceil(stats.reset_time), int(now))
    retry_after = 0 if allowed else max(1, math.ceil(stats.reset_time - now))
    return RateDecision(allowed, item.amount, stats.remaining, reset_at, retry_after)


def enforce(storage: Storage, limit: str, family: str, *identity: str) -> RateDecision:
    """Like :func:`check`, but raise :class:`RateLimited` when the budget is spent."""
    decision = check(storage, limit, family, *identity)
    if not decision.allowed:
        raise RateLimited(
            f"Too many requests; retry in {decision.retry_after} seconds.",
            retry_after_seconds=decision.retry_after,
            retryAfterSeconds=decision.retry_after,
            limit=decision.limit,
        )
    return decision


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


class RateLimitMiddleware:
    """Per-family limits for ``/api/v1/*`` and the sign-in / OAuth endpoints."""

    AUTH_PATHS = (
        "/users/log-in",
        "/users/register",
        "/oauth/token",
        "/oauth/register",
        "/oauth/authorize",
        "/oauth/revoke",
    )

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    def _family(self, scope: Scope, config: ApiConfig) -> tuple[str, str] | None:
        path = str(scope.get("path", ""))
        method = str(scope.get("method", "GET"))
        if path.startswith("/api/v1/") and not path.startswith("/api/v1/agent/"):
            if method in ("GET", "HEAD", "OPTIONS"):
                return "v1-read", config.rate_limit_v1_read
            return "v1-write", config.rate_limit_v1_write
        if method == "POST" and path in self.AUTH_PATHS:
            return "auth", config.rate_limit_auth
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if str(scope["type"]) != "http":
            await self.app(scope, receive, send)
            return
        app = scope["app"]
        config: ApiConfig = app.state.api_config
        family = self._family(scope, config)
        if family is None:
            await self.app(scope, receive, send)
            return
        from backline.api.auth import resolve_principal
        from backline.api.forms import in_thread

        name, limit = family
        identity = f"ip:{client_ip(scope)}"
        if name.startswith("v1"):
            try:
                principal = await in_thread(resolve_principal, Request(scope, receive))
            except DomainError:
                principal = None  # the handler answers 401; count it against the IP
            if principal is not None:
                identity = f"{principal.via}:{principal.client_id or principal.account_id}"
        try:
            decision = await in_thread(check, app.state.services.rate_limits, limit, name, identity)
        except Exception:
            log.exception("rate_limit_storage_failed", family=name)
            await self.app(scope, receive, send)  # fail open: limits protect, never break
            return
        extra = [(k.lower().encode(), v.encode()) for k, v in decision.headers().items()]
        if not decision.allowed:
            body = msgspec.json.encode(
                {
                    "error": {
                        "code": "rate_limited",
                        "message": f"Too many requests; retry in {decision.retry_after} seconds.",
                        "retryAfterSeconds": decision.retry_after,
                    }
                }
            )
            start: Any = {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
            await send(start)
            end: Any = {"type": "http.response.body", "body": body}
            await send(end)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def as_dict(decision: RateDecision) -> dict[str, Any]:
    return {"limit": decision.limit, "remaining": decision.remaining, "reset": decision.reset_at}

"""One error-mapping layer: domain errors and framework errors to each surface's shape.

REST and browser JSON: ``{"error": {"code", "message", ...details}}``. HTML pages get a
small HTML page. Unexpected exceptions are logged with the request id and answered 500
with no internals. Surfaces with their own document shape (ONCE JSON-RPC, OnChain
``{"error", "details"}``) register their own handlers on their routers.
"""

from __future__ import annotations

import html
from typing import Any

import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import (
    HTTPException,
    NotAuthorizedException,
    NotFoundException,
    PermissionDeniedException,
    ValidationException,
)
from litestar.status_codes import (
    HTTP_400_BAD_REQUEST,
    HTTP_401_UNAUTHORIZED,
    HTTP_403_FORBIDDEN,
    HTTP_404_NOT_FOUND,
    HTTP_409_CONFLICT,
    HTTP_422_UNPROCESSABLE_ENTITY,
    HTTP_423_LOCKED,
    HTTP_429_TOO_MANY_REQUESTS,
    HTTP_500_INTERNAL_SERVER_ERROR,
)

from backline.application.payments import PaymentProviderUnavailable
from backline.domain.errors import (
    Conflict,
    DomainError,
    Forbidden,
    Locked,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)

log = structlog.get_logger(__name__)

STATUS_BY_ERROR: list[tuple[type[DomainError], int]] = [
    (ValidationFailed, HTTP_422_UNPROCESSABLE_ENTITY),
    (NotFound, HTTP_404_NOT_FOUND),
    (Conflict, HTTP_409_CONFLICT),
    (Unauthorized, HTTP_401_UNAUTHORIZED),
    (Forbidden, HTTP_403_FORBIDDEN),
    (Locked, HTTP_423_LOCKED),
    (RateLimited, HTTP_429_TOO_MANY_REQUESTS),
    (PaymentProviderUnavailable, 503),
]


def status_for(error: DomainError) -> int:
    for cls, status in STATUS_BY_ERROR:
        if isinstance(error, cls):
            return status
    return HTTP_400_BAD_REQUEST


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    accept = request.headers.get("accept", "")
    return "text/html" in accept and "application/json" not in accept


def error_body(code: str, message: str, **details: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"code": code, "message": message}
    body.update({k: v for k, v in details.items() if v is not None})
    return {"error": body}


def render(
    request: Request[Any, Any, Any],
    status: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **details: Any,
) -> Response[Any]:
    headers = dict(headers or {})
    request_id = request.scope.get("state", {}).get("request_id")
    if _wants_html(request):
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>Backline</title></head>"
            f"<body><h1>{html.escape(message)}</h1><p>Error code: <code>{html.escape(code)}</code>"
            f"{' &middot; request ' + html.escape(str(request_id)) if request_id else ''}</p>"
            "<p><a href='/users/log-in'>Sign in</a></p></body></html>"
        )
        return Response(page, status_code=status, media_type=MediaType.HTML, headers=headers)
    body = error_body(code, message, **details)
    if request_id:
        body["error"]["request_id"] = request_id
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


def domain_error_handler(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    status = status_for(exc)
    headers: dict[str, str] = {}
    retry = exc.details.get("retry_after_seconds")
    if isinstance(retry, int) and status in (HTTP_429_TOO_MANY_REQUESTS, HTTP_423_LOCKED):
        headers["Retry-After"] = str(retry)
    if status == HTTP_401_UNAUTHORIZED:
        headers.update(getattr(exc, "headers", {}) or {})
    return render(request, status, exc.code, exc.message, headers, **exc.details)


def validation_handler(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    fields: list[dict[str, Any]] = []
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                fields.append({k: item.get(k) for k in ("key", "message", "source") if k in item})
    detail = exc.detail or "Request is invalid."
    code = "invalid_json" if "JSON" in detail or "decode" in detail.lower() else "invalid_request"
    return render(request, HTTP_400_BAD_REQUEST, code, detail, fields=fields or None)


def http_error_handler(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = {
        HTTP_401_UNAUTHORIZED: "unauthorized",
        HTTP_403_FORBIDDEN: "forbidden",
        HTTP_404_NOT_FOUND: "not_found",
        405: "method_not_allowed",
        413: "payload_too_large",
        HTTP_429_TOO_MANY_REQUESTS: "rate_limited",
    }.get(status, "http_error")
    message = exc.detail or "Request failed."
    if isinstance(exc, PermissionDeniedException) and "CSRF" in (exc.detail or ""):
        code, message = "csrf_failed", "CSRF token missing or invalid; reload the page and retry."
    elif isinstance(exc, NotFoundException):
        message = "Not found."
    elif isinstance(exc, NotAuthorizedException):
        code = "unauthorized"
    return render(request, status, code, message, dict(exc.headers or {}))


def internal_error_handler(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return render(
        request,
        HTTP_500_INTERNAL_SERVER_ERROR,
        "internal_error",
        "Something went wrong on our side; the request id identifies it in our logs.",
    )


EXCEPTION_HANDLERS: dict[type[Exception] | int, Any] = {
    DomainError: domain_error_handler,
    ValidationException: validation_handler,
    HTTPException: http_error_handler,
    Exception: internal_error_handler,
}

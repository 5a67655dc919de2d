"""Reading form or JSON bodies into plain string fields, with typed errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import anyio.to_thread
import msgspec
from litestar import Request

from backline.domain.errors import ValidationFailed

T = TypeVar("T")
MAX_FIELD_LENGTH = 4096


async def in_thread(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run blocking application code (the event store is synchronous) off the loop."""
    return await anyio.to_thread.run_sync(functools.partial(fn, *args, **kwargs))


def is_json_request(request: Request[Any, Any, Any]) -> bool:
    ctype = request.headers.get("content-type", "")
    accept = request.headers.get("accept", "")
    return ctype.startswith("application/json") or (
        "application/json" in accept and "text/html" not in accept
    )


async def read_fields(request: Request[Any, Any, Any], allowed: set[str]) -> dict[str, str]:
    """Form (urlencoded or multipart) or JSON object → ``{name: str}`` for allowed names."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw: dict[str, Any]
    if ctype == "application/json":
        body = await request.body()
        try:
            decoded = msgspec.json.decode(body) if body else {}
        except msgspec.DecodeError:
            raise ValidationFailed("Body is not valid JSON.", code="invalid_json") from None
        if not isinstance(decoded, dict):
            raise ValidationFailed("Body must be a JSON object.", code="invalid_json")
        raw = decoded
    elif ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        raw = {k: form.get(k) for k in form}
    elif not ctype:
        raw = {}
    else:
        raise ValidationFailed(
            f"Unsupported content type {ctype!r}; send a form or JSON.",
            code="unsupported_media_type",
        )
    fields: dict[str, str] = {}
    for name in allowed:
        value = raw.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ValidationFailed(f"{name} must be a string.", code="invalid_field", field=name)
        text = str(value)
        if len(text) > MAX_FIELD_LENGTH:
            raise ValidationFailed(
                f"{name} is too long (max {MAX_FIELD_LENGTH}).", code="field_too_long", field=name
            )
        fields[name] = text
    return fields


def safe_next(value: str | None, default: str) -> str:
    """Only same-site relative paths are followed after sign-in (no open redirects)."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    if any(ch in value for ch in "\r\n"):
        return default
    return value

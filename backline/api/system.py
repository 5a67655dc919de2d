"""Health and the OpenAPI document."""

from __future__ import annotations

from typing import Any

from litestar import Request, get
from litestar.params import FromQuery

from backline.api.auth import services
from backline.api.forms import in_thread


@get(
    "/health",
    summary="Liveness (and, with ?verbose=1, store head and projection lag)",
    tags=["System"],
)
async def health(request: Request[Any, Any, Any], verbose: FromQuery[int] = 0) -> dict[str, Any]:
    return await in_thread(services(request).health, bool(verbose))


@get("/openapi.json", summary="OpenAPI 3.1 document", tags=["System"], include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi_schema.to_schema()
    return schema

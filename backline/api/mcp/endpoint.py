"""``POST /api/mcp``: MCP over Streamable HTTP with JSON responses (stateless).

Protocol versions ``2025-03-26``, ``2025-06-18`` and ``2025-11-25``: ``initialize``
echoes the client's version when supported, else answers the newest. No session id
is issued (every request is authenticated on its own), so no ``GET`` stream: ``GET``
and ``DELETE`` answer ``405``.

Authentication: a bearer access token (audience = this endpoint, scope ``once:mcp``).
Without one the answer is ``401`` with ``WWW-Authenticate: Bearer resource_metadata=…``
(RFC 9728) — except ``tools/call`` of a tool registered with ``auth=False`` (the seed's
first-party ``create_account`` / ``password_authorize``). A present ``Origin`` must be
this server, the AIMD origin or a configured allowed origin (DNS-rebinding defence).

Errors: parse error ``-32700`` and invalid request ``-32600`` (HTTP 400), unknown method
``-32601``, unknown tool or bad arguments ``-32602``. A tool's
:class:`~backline.domain.errors.DomainError` becomes a JSON-RPC error whose
``error.data.code`` is the domain code (seed 001); :class:`RateLimited` uses
``error.code = 429`` and ``error.data.retryAfterSeconds``. An unexpected failure inside
a tool is a result with ``isError: true`` (no internals leaked).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import msgspec
import structlog
from litestar import MediaType, Request, Response, route
from litestar.status_codes import HTTP_202_ACCEPTED

from backline.api.auth import Principal, api_config, challenge, resolve_principal, services
from backline.api.deps import ApiConfig
from backline.api.forms import in_thread
from backline.api.mcp import tools as tool_modules
from backline.api.mcp.registry import REGISTRY, Provenance, Tool, ToolContext
from backline.api.ratelimit import check, client_ip
from backline.domain.errors import (
    DomainError,
    Forbidden,
    NotFound,
    RateLimited,
    Unauthorized,
    ValidationFailed,
)

log = structlog.get_logger(__name__)

SUPPORTED_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
SECRET_HEADERS = frozenset({"authorization", "cookie", "x-api-key", "x-mcp-upload-token"})
LATEST_VERSION = SUPPORTED_VERSIONS[-1]
SERVER_INFO = {"name": "backline", "title": "Backline", "version": "0.1.0"}
INSTRUCTIONS = (
    "Backline distributes, analyses and licenses music for independent musicians. "
    "Use get_profile to greet the user; every tool acts on the signed-in account."
)

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
# Server-defined codes (JSON-RPC reserves -32000..-32099 for implementations).
DOMAIN_ERROR_CODES: list[tuple[type[DomainError], int]] = [
    (RateLimited, 429),
    (ValidationFailed, INVALID_PARAMS),
    (Unauthorized, -32001),
    (Forbidden, -32003),
    (NotFound, -32004),
]


def _rpc_error(
    id_: Any, code: int, message: str, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": error}


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response[Any]:
    return Response(
        content=msgspec.json.encode(body),
        status_code=status,
        media_type=MediaType.JSON,
        headers=headers or {},
    )


def domain_error_body(id_: Any, exc: DomainError) -> dict[str, Any]:
    code = -32000
    for cls, value in DOMAIN_ERROR_CODES:
        if isinstance(exc, cls):
            code = value
            break
    data: dict[str, Any] = {"code": exc.code}
    for key, value in exc.details.items():
        if key == "retry_after_seconds":
            data["retryAfterSeconds"] = value
        elif value is not None:
            data[key] = value
    return _rpc_error(id_, code, exc.message, data)


def origin_allowed(origin: str, config: ApiConfig) -> bool:
    allowed = {_origin_of(config.public_url), _origin_of(config.aimd_origin)}
    allowed.update(_origin_of(o) for o in config.allowed_origins)
    return _origin_of(origin) in allowed


def _origin_of(url: str) -> str:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return ""
    if not parts.scheme or not parts.netloc:
        return ""
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}"


def provenance_of(request: Request[Any, Any, Any], config: ApiConfig, arguments: Any) -> Provenance:
    aimd = _origin_of(config.aimd_origin)
    for header in ("origin", "referer"):
        value = request.headers.get(header)
        if value and aimd and _origin_of(value) == aimd:
            return "AIMD"
    if isinstance(arguments, dict) and arguments.get("provenance") == "AIMD":
        return "AIMD"
    return "MCP"


def tool_descriptor(t: Tool[Any, Any]) -> dict[str, Any]:
    desc: dict[str, Any] = {
        "name": t.name,
        "description": t.description,
        "inputSchema": t.input_schema(),
    }
    output = t.output_schema()
    if output is not None:
        desc["outputSchema"] = output
    if t.annotations:
        desc["annotations"] = dict(t.annotations)
    return desc


def _unauthenticated(config: ApiConfig, error: str | None = None) -> Response[Any]:
    body = {"error": {"code": error or "unauthorized", "message": "Authorization required."}}
    return _json(body, 401, {"WWW-Authenticate": challenge(config, error)})


def _call_tool(t: Tool[Any, Any], ctx: ToolContext, arguments: dict[str, Any]) -> Any:
    args = msgspec.convert(arguments, t.input_type, strict=True)
    return t.handler(ctx, args)


# upload_file carries up to 8 MiB of base64 (about 10.7 MiB of JSON); everything else is small.
MCP_MAX_BODY_BYTES = 12 * 1024 * 1024


@route(
    "/api/mcp",
    http_method=["GET", "POST", "DELETE"],
    tags=["MCP"],
    summary="MCP endpoint",
    request_max_body_size=MCP_MAX_BODY_BYTES,
)
async def mcp_endpoint(request: Request[Any, Any, Any]) -> Response[Any]:
    config = api_config(request)
    if request.method != "POST":
        return Response(
            content=b"", status_code=405, headers={"Allow": "POST"}, media_type=MediaType.TEXT
        )
    origin = request.headers.get("origin")
    if origin and not origin_allowed(origin, config):
        return _json({"error": {"code": "forbidden_origin", "message": "Origin not allowed."}}, 403)
    version = request.headers.get("mcp-protocol-version")
    if version and version not in SUPPORTED_VERSIONS:
        return _json(
            _rpc_error(None, INVALID_REQUEST, f"Unsupported MCP-Protocol-Version {version!r}."),
            400,
        )

    raw = await request.body()
    try:
        message = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return _json(_rpc_error(None, PARSE_ERROR, "Parse error: body is not JSON."), 400)
    if isinstance(message, list):
        return _json(_rpc_error(None, INVALID_REQUEST, "JSON-RPC batches are not supported."), 400)
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        return _json(_rpc_error(None, INVALID_REQUEST, "Invalid Request: not JSON-RPC 2.0."), 400)
    id_ = message.get("id")
    method = message.get("method")
    if "method" not in message:
        if ("result" in message or "error" in message) and "id" in message:
            return Response(content=b"", status_code=HTTP_202_ACCEPTED)  # a client's response
        return _json(_rpc_error(None, INVALID_REQUEST, "Invalid Request: no method."), 400)
    if not isinstance(method, str) or (
        "id" in message and (id_ is None or isinstance(id_, bool) or not isinstance(id_, str | int))
    ):
        return _json(_rpc_error(None, INVALID_REQUEST, "Invalid Request: bad method or id."), 400)
    params = message.get("params", {})
    if params is not None and not isinstance(params, dict):
        return _json(_rpc_error(id_, INVALID_PARAMS, "params must be an object."))
    params = params or {}

    # Who is calling: a bearer token, or nobody (only public tools then).
    svc = services(request)
    principal: Principal | None = None
    try:
        principal = await in_thread(resolve_principal, request)
    except Unauthorized:
        return _unauthenticated(config, "invalid_token")
    except Forbidden:
        body = {"error": {"code": "insufficient_scope", "message": "Scope once:mcp required."}}
        return _json(body, 403, {"WWW-Authenticate": challenge(config, "insufficient_scope")})
    if principal is not None and principal.via == "session":
        principal = None  # MCP is a bearer surface; a cookie is not accepted here (CSRF)
    tool_name = params.get("name") if method == "tools/call" else None
    public_tool = (
        isinstance(tool_name, str)
        and tool_name in REGISTRY
        and not REGISTRY[tool_name].requires_auth
    )
    if principal is None and not public_tool:
        return _unauthenticated(config)

    if "id" not in message:
        return Response(content=b"", status_code=HTTP_202_ACCEPTED)  # notification

    identity = f"acct:{principal.account_id}" if principal else f"ip:{client_ip(request.scope)}"
    decision = await in_thread(check, svc.rate_limits, config.rate_limit_mcp, "mcp", identity)
    headers = decision.headers()
    if not decision.allowed:
        error = RateLimited("Too many requests.", retry_after_seconds=decision.retry_after)
        return _json(domain_error_body(id_, error), 429, headers)

    if method == "initialize":
        requested = params.get("protocolVersion")
        negotiated = requested if requested in SUPPORTED_VERSIONS else LATEST_VERSION
        result: dict[str, Any] = {
            "protocolVersion": negotiated,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": SERVER_INFO,
            "instructions": INSTRUCTIONS,
        }
        return _json({"jsonrpc": "2.0", "id": id_, "result": result}, headers=headers)
    if method == "ping":
        return _json({"jsonrpc": "2.0", "id": id_, "result": {}}, headers=headers)
    if method == "tools/list":
        tool_modules.load_all()
        tools = [tool_descriptor(t) for t in sorted(REGISTRY.values(), key=lambda t: t.name)]
        return _json({"jsonrpc": "2.0", "id": id_, "result": {"tools": tools}}, headers=headers)
    if method != "tools/call":
        return _json(
            _rpc_error(id_, METHOD_NOT_FOUND, f"Method not found: {method}"), headers=headers
        )

    tool_modules.load_all()
    if not isinstance(tool_name, str) or tool_name not in REGISTRY:
        return _json(
            _rpc_error(id_, INVALID_PARAMS, f"Unknown tool: {tool_name!r}"), headers=headers
        )
    t = REGISTRY[tool_name]
    arguments = params.get("arguments")
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        return _json(
            _rpc_error(id_, INVALID_PARAMS, "arguments must be an object."), headers=headers
        )
    ctx = ToolContext(
        principal=principal,
        services=svc,
        provenance=provenance_of(request, config, arguments),
        client_ip=client_ip(request.scope),
        public_url=config.public_url,
        headers={
            k.lower(): v for k, v in request.headers.items() if k.lower() not in SECRET_HEADERS
        },
        config=config,
    )
    try:
        output = await in_thread(_call_tool, t, ctx, arguments)
    except msgspec.ValidationError as e:
        return _json(
            _rpc_error(id_, INVALID_PARAMS, f"Invalid arguments: {e}", {"code": "invalid_params"}),
            headers=headers,
        )
    except DomainError as e:
        return _json(domain_error_body(id_, e), headers=headers)
    except Exception:
        log.exception("mcp_tool_failed", tool=tool_name)
        failed = {
            "content": [{"type": "text", "text": "The tool failed unexpectedly; please retry."}],
            "isError": True,
        }
        return _json({"jsonrpc": "2.0", "id": id_, "result": failed}, headers=headers)
    structured = msgspec.to_builtins(output) if output is not None else {}
    result = {
        "content": [{"type": "text", "text": msgspec.json.encode(structured).decode()}],
        "structuredContent": structured,
        "isError": False,
    }
    log.info("mcp_tool_called", tool=tool_name, provenance=ctx.provenance)
    return _json({"jsonrpc": "2.0", "id": id_, "result": result}, headers=headers)

"""The MCP tool registry: one module per area adds its tools with ``@tool``.

A tool declares msgspec Structs for its input and output; the same Structs serve the
REST route that mirrors it, the tool's ``inputSchema``/``outputSchema`` and OpenAPI.
Handlers are synchronous (the event store is) and run off the event loop. They raise
:class:`backline.domain.errors.DomainError` for refusals; the endpoint maps those to the
seed's typed ``error.data.code`` values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

import msgspec

from backline.api.auth import Principal
from backline.api.deps import ApiConfig, Services

In = TypeVar("In", bound=msgspec.Struct)
Out = TypeVar("Out")

Provenance = Literal["AIMD", "MCP"]


@dataclass(frozen=True)
class ToolContext:
    """What a tool handler may use: the caller, the services, and request facts."""

    principal: Principal | None
    services: Services
    provenance: Provenance
    client_ip: str
    public_url: str
    headers: dict[str, str] = field(default_factory=dict)
    config: ApiConfig | None = None  # settings the edge sees (allowlists, signing secret)

    def require_principal(self) -> Principal:
        from backline.domain.errors import Unauthorized

        if self.principal is None:
            raise Unauthorized("Sign in first.", code="unauthorized")
        return self.principal


@dataclass(frozen=True)
class Tool(Generic[In, Out]):
    name: str
    description: str
    input_type: type[In]
    output_type: type[Out] | None
    handler: Callable[[ToolContext, In], Out]
    requires_auth: bool = True
    annotations: dict[str, Any] = field(default_factory=dict)

    def input_schema(self) -> dict[str, Any]:
        return struct_schema(self.input_type)

    def output_schema(self) -> dict[str, Any] | None:
        return struct_schema(self.output_type) if self.output_type is not None else None


REGISTRY: dict[str, Tool[Any, Any]] = {}


def tool(
    name: str,
    description: str,
    *,
    input: type[In],
    output: type[Out] | None = None,
    auth: bool = True,
    read_only: bool = False,
) -> Callable[[Callable[[ToolContext, In], Out]], Callable[[ToolContext, In], Out]]:
    """Register a handler as the MCP tool ``name``."""

    def decorate(fn: Callable[[ToolContext, In], Out]) -> Callable[[ToolContext, In], Out]:
        if name in REGISTRY:
            raise RuntimeError(f"MCP tool {name!r} registered twice")
        REGISTRY[name] = Tool(
            name=name,
            description=description,
            input_type=input,
            output_type=output,
            handler=fn,
            requires_auth=auth,
            annotations={"readOnlyHint": True} if read_only else {},
        )
        return fn

    return decorate


def struct_schema(tp: type[Any]) -> dict[str, Any]:
    """A self-contained JSON Schema (definitions inlined under ``$defs``) for a Struct."""
    (schema,), components = msgspec.json.schema_components([tp], ref_template="#/$defs/{name}")
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        root = dict(components.pop(name))
    else:
        root = dict(schema)
    if components:
        root["$defs"] = components
    root.setdefault("type", "object")
    return root

"""OnChain Music Agent API (seed 004) under ``/api/v1/agent``, plus the dev-chain levers.

Errors keep the document's shapes: ``{"error": "Validation failed.", "details": {...}}``
(422) and ``{"error": "..."}`` (404 and others). Licensing answers ``402`` with the
seed's ``PaymentRequiredResponse`` *and* x402 payment requirements (v2 in the body and
base64 in ``PAYMENT-REQUIRED``; v1 in the body with ``?x402_version=1``, which is what
x402 v1 clients read). A retry carrying ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1)
is verified and settled by Backline's own facilitator.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import time
from typing import Any
from uuid import UUID

import structlog
from litestar import Request, Response, Router, get, post
from litestar.exceptions import HTTPException, ValidationException
from litestar.params import FromPath
from litestar.status_codes import HTTP_200_OK

from backline.api.agent_types import AgentServices
from backline.api.forms import in_thread
from backline.application.catalog_search import SearchParams, parse_search_params
from backline.application.chain import Authorization, ChainError
from backline.application.licensing import DownloadExpired, PaymentRejected
from backline.domain.catalog import FORMATS, LICENSE_TYPES, format_usdc
from backline.domain.errors import (
    Conflict,
    DomainError,
    NotFound,
    RateLimited,
    ValidationFailed,
)
from backline.domain.licensing import License
from backline.projections.catalog import last_page, track_view

log = structlog.get_logger(__name__)

PREFIX = "/api/v1/agent"
TRACK_NOT_FOUND = "Track not found or not available for licensing."
MAX_X402_HEADER = 16_384


# -- plumbing ---------------------------------------------------------------------------


def _agent(request: Request[Any, Any, Any]) -> AgentServices:
    agent: AgentServices = request.app.state.services.agent
    return agent


def _public(request: Request[Any, Any, Any]) -> str:
    return str(request.app.state.api_config.public_url)


def _client_ip(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


_MEMORY_STORAGE: Any = None


def _rate_storage(request: Request[Any, Any, Any]) -> Any:
    storage = getattr(request.app.state.services, "rate_limits", None)
    if storage is not None:
        return storage
    global _MEMORY_STORAGE
    if _MEMORY_STORAGE is None:
        from limits.storage import MemoryStorage

        _MEMORY_STORAGE = MemoryStorage()
    return _MEMORY_STORAGE


async def _limit(request: Request[Any, Any, Any], family: str) -> dict[str, str]:
    """60 searches / 10 license requests per minute per client IP (seed 004)."""
    from backline.api.ratelimit import check

    settings = _agent(request).settings.licensing
    limit = settings.rate_limit_search if family == "agent-search" else settings.rate_limit_license
    decision = await in_thread(
        check, _rate_storage(request), limit, family, f"ip:{_client_ip(request)}"
    )
    if not decision.allowed:
        raise RateLimited(
            f"Rate limit exceeded ({decision.limit} requests/minute).",
            retry_after_seconds=decision.retry_after,
        )
    return decision.headers()


def _error(
    status: int, message: str, headers: dict[str, str] | None = None, **extra: Any
) -> Response[Any]:
    return Response({"error": message, **extra}, status_code=status, headers=headers or {})


def agent_domain_error(request: Request[Any, Any, Any], exc: DomainError) -> Response[Any]:
    if isinstance(exc, ValidationFailed):
        details = exc.details.get("errors")
        if not isinstance(details, dict):
            field = exc.details.get("field") or "request"
            details = {field: [exc.message]}
        return _error(422, "Validation failed.", details=details)
    if isinstance(exc, NotFound):
        return _error(404, exc.message)
    if isinstance(exc, RateLimited):
        retry = str(exc.retry_after_seconds)
        return _error(429, exc.message, {"Retry-After": retry}, retry_after=exc.retry_after_seconds)
    if isinstance(exc, DownloadExpired):
        return _error(410, exc.message)
    if isinstance(exc, Conflict):
        return _error(409, exc.message, code=exc.code)
    return _error(400, exc.message, code=exc.code)


def agent_validation_error(
    request: Request[Any, Any, Any], exc: ValidationException
) -> Response[Any]:
    details: dict[str, list[str]] = {}
    if isinstance(exc.extra, list):
        for item in exc.extra:
            if isinstance(item, dict):
                details.setdefault(str(item.get("key") or "request"), []).append(
                    str(item.get("message") or "is invalid")
                )
    return _error(422, "Validation failed.", details=details or {"request": [str(exc.detail)]})


def agent_http_error(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    message = "Not found." if exc.status_code == 404 else (exc.detail or "Request failed.")
    return _error(exc.status_code, message, dict(exc.headers or {}))


def agent_chain_error(request: Request[Any, Any, Any], exc: ChainError) -> Response[Any]:
    log.warning("chain_unavailable", error=str(exc))
    return _error(503, "The payment chain is unreachable; retry shortly.", {"Retry-After": "5"})


def agent_internal_error(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("agent_unhandled_error", path=request.url.path, error_type=type(exc).__name__)
    return _error(500, "Internal server error.")


def _licensing_info(agent: AgentServices, public: str) -> dict[str, Any]:
    # Searching must not depend on the chain: without it the chain fields are null.
    try:
        chain_id, token = agent.chain.chain_id, agent.chain.token_address
    except Exception:
        log.warning("chain_unavailable_for_search")
        chain_id, token = None, None
    return {
        "protocol": "x402",
        "chain": "base",
        "chain_id": chain_id,
        "token": "USDC",
        "token_contract": token,
        "license_types": list(LICENSE_TYPES),
        "how_to_license": f"POST {public}{PREFIX}/license/{{track_id}}/{{license_type}} with "
        "paying_wallet, pay the exact amount, then poll verify_url.",
        "dev_chain": agent.is_dev_chain,
    }


# -- catalog ------------------------------------------------------------------------------


def _search_body(agent: AgentServices, params: SearchParams, public: str) -> dict[str, Any]:
    result = agent.catalog_queries.search(params)
    return {
        "data": [track_view(r, public, params.license_type) for r in result.rows],
        "meta": {
            "total": result.total,
            "per_page": params.per_page,
            "current_page": params.page,
            "last_page": last_page(result.total, params.per_page),
            "fallback": result.fallback,
            "relaxed_filters": result.relaxed,
        },
        "licensing": _licensing_info(agent, public),
    }


def _query_dict(request: Request[Any, Any, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        out[key] = value  # the last value of a repeated parameter wins
    return out


@get("/catalog/search", summary="Search the music catalog", tags=["Agent licensing"])
async def catalog_search(request: Request[Any, Any, Any]) -> Response[Any]:
    headers = await _limit(request, "agent-search")
    params = parse_search_params(_query_dict(request))
    agent = _agent(request)
    body = await in_thread(_search_body, agent, params, _public(request))
    return Response(body, headers=headers)


@get("/catalog/tracks/{track_id:str}", summary="Get a single track", tags=["Agent licensing"])
async def catalog_track(request: Request[Any, Any, Any], track_id: FromPath[str]) -> Response[Any]:
    headers = await _limit(request, "agent-search")
    if not track_id.isdigit() or len(track_id) > 12:
        raise NotFound(TRACK_NOT_FOUND)
    agent = _agent(request)
    row = await in_thread(agent.catalog_queries.get, int(track_id))
    if row is None:
        raise NotFound(TRACK_NOT_FOUND)
    public = _public(request)
    return Response(
        {"data": track_view(row, public), "licensing": _licensing_info(agent, public)},
        headers=headers,
    )


async def _json_body(request: Request[Any, Any, Any], *, required: bool) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        if required:
            raise ValidationFailed(
                "Validation failed.", errors={"body": ["A JSON body is required."]}
            )
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ValidationFailed(
            "Validation failed.", errors={"body": ["The body must be valid JSON."]}
        ) from None
    if not isinstance(data, dict):
        raise ValidationFailed(
            "Validation failed.", errors={"body": ["The body must be a JSON object."]}
        )
    return data


@post(
    "/ai-search",
    summary="Natural language music search",
    tags=["Agent licensing"],
    status_code=HTTP_200_OK,
)
async def ai_search(request: Request[Any, Any, Any]) -> Response[Any]:
    headers = await _limit(request, "agent-search")
    body = await _json_body(request, required=True)
    agent = _agent(request)
    phrase = body.get("phrase")
    translated, provider = await in_thread(
        agent.ai_search.translate, phrase, body.get("per_page", 10)
    )
    params = parse_search_params(translated)
    result = await in_thread(_search_body, agent, params, _public(request))
    result["ai"] = {
        "original_phrase": phrase,
        "translated_params": translated,
        "provider": provider,
    }
    return Response(result, headers=headers)


# -- licensing ----------------------------------------------------------------------------


def _requirements(
    lic: License, agent: AgentServices, resource: str, version: int
) -> dict[str, Any]:
    chain = agent.chain
    extra = {"name": chain.token_name, "version": chain.token_version, "payment_id": str(lic.id)}
    timeout = max(60, int(lic.expires_at.timestamp() - time.time()))
    description = f"{lic.terms.get('name', 'License')}: {lic.track.get('title', '')}"
    if version == 1:
        return {
            "scheme": "exact",
            "network": "base",
            "maxAmountRequired": str(lic.amount_units),
            "resource": resource,
            "description": description,
            "mimeType": "application/json",
            "payTo": lic.receiving_address,
            "maxTimeoutSeconds": timeout,
            "asset": lic.token_contract,
            "extra": extra,
        }
    return {
        "scheme": "exact",
        "network": f"eip155:{lic.chain_id}",
        "amount": str(lic.amount_units),
        "asset": lic.token_contract,
        "payTo": lic.receiving_address,
        "maxTimeoutSeconds": timeout,
        "extra": extra,
    }


def _payment_required(
    lic: License, agent: AgentServices, public: str, resource: str, version: int
) -> tuple[dict[str, Any], dict[str, str]]:
    verify_url = f"{public}{PREFIX}/license/verify/{lic.id}"
    amount = format_usdc(lic.amount_units)
    body: dict[str, Any] = {
        "status": "payment_required",
        "message": (
            f"Send exactly {amount} USDC on Base from "
            f"{lic.paying_wallet or 'your wallet'} to {lic.receiving_address}, then poll "
            "verify_url. Or retry this request with an x402 payment header."
        ),
        "payment": {
            "x402_version": "1.0",
            "payment_id": str(lic.id),
            "expires_at": lic.expires_at.isoformat(),
            "payment_details": {
                "chain": "base",
                "chain_id": lic.chain_id,
                "token": "USDC",
                "receiving_address": lic.receiving_address,
                "amount_usdc": float(amount),
                "amount_units": str(lic.amount_units),
                "amount_usdc_exact": amount,
                "token_contract": lic.token_contract,
                "paying_wallet": lic.paying_wallet,
                "dev_chain": agent.is_dev_chain,
            },
            "track": {
                "id": lic.track_id,
                "title": lic.track.get("title"),
                "artists": lic.track.get("artists"),
                "license_type": lic.license_type,
                "license_name": lic.terms.get("name"),
                "price_usdc": lic.terms.get("price_usdc"),
            },
            "instructions": {
                "step_1": f"Send exactly {amount} USDC (token contract {lic.token_contract}, "
                f"{lic.amount_units} units of 6 decimals) on chain {lic.chain_id}.",
                "step_2": f"From your declared wallet {lic.paying_wallet or '(declare one)'} "
                f"to {lic.receiving_address}. The exact amount identifies your payment: "
                "another amount or another sender will not match.",
                "step_3": f"Poll {verify_url} every 5 seconds until status is license_issued.",
                "x402": "Or retry this request with PAYMENT-SIGNATURE (x402 v2) or X-PAYMENT "
                "(x402 v1) carrying an EIP-3009 transferWithAuthorization for the amount.",
                "expires_at": lic.expires_at.isoformat(),
            },
            "verify_url": verify_url,
        },
        "x402Version": version,
        "error": "payment_required",
        "accepts": [_requirements(lic, agent, resource, version)],
    }
    headers: dict[str, str] = {}
    if version == 2:
        body["resource"] = {
            "url": resource,
            "description": body["payment"]["track"]["title"],
            "mimeType": "application/json",
        }
        required = {
            "x402Version": 2,
            "error": "payment_required",
            "resource": body["resource"],
            "accepts": body["accepts"],
        }
        headers["PAYMENT-REQUIRED"] = base64.b64encode(json.dumps(required).encode()).decode()
    return body, headers


def _decode_x402(header: str) -> dict[str, Any]:
    if len(header) > MAX_X402_HEADER:
        raise PaymentRejected("Payment header is too large.", code="invalid_payload")
    try:
        data = json.loads(base64.b64decode(header, validate=False))
    except (ValueError, UnicodeDecodeError):
        raise PaymentRejected(
            "Payment header is not base64 JSON.", code="invalid_payload"
        ) from None
    if not isinstance(data, dict):
        raise PaymentRejected("Payment header is not a JSON object.", code="invalid_payload")
    return data


def _authorization(
    data: dict[str, Any], agent: AgentServices, version: int
) -> tuple[Authorization, UUID | None]:
    chain = agent.chain
    payment_id: UUID | None = None
    if version == 1:
        scheme, network = data.get("scheme"), data.get("network")
        if network != "base" or chain.chain_id != 8453:
            raise PaymentRejected("Unsupported network.", code="invalid_network")
    else:
        accepted = data.get("accepted") or {}
        if not isinstance(accepted, dict):
            raise PaymentRejected("accepted must be an object.", code="invalid_payload")
        scheme, network = accepted.get("scheme"), accepted.get("network")
        if network != f"eip155:{chain.chain_id}":
            raise PaymentRejected("Unsupported network.", code="invalid_network")
        if str(accepted.get("asset", "")).lower() != chain.token_address.lower():
            raise PaymentRejected("Unsupported asset.", code="invalid_asset")
        extra = accepted.get("extra") or {}
        if isinstance(extra, dict) and extra.get("payment_id"):
            try:
                payment_id = UUID(str(extra["payment_id"]))
            except ValueError:
                raise PaymentRejected("Unknown payment.", code="invalid_payload") from None
    if scheme != "exact":
        raise PaymentRejected("Unsupported scheme.", code="unsupported_scheme")
    payload = data.get("payload") or {}
    auth = payload.get("authorization") if isinstance(payload, dict) else None
    signature = payload.get("signature") if isinstance(payload, dict) else None
    if not isinstance(auth, dict) or not isinstance(signature, str):
        raise PaymentRejected("Missing EIP-3009 authorization.", code="invalid_payload")
    try:
        return Authorization(
            sender=str(auth["from"]),
            receiver=str(auth["to"]),
            value=int(auth["value"]),
            valid_after=int(auth["validAfter"]),
            valid_before=int(auth["validBefore"]),
            nonce=str(auth["nonce"]),
            signature=signature,
        ), payment_id
    except (KeyError, TypeError, ValueError):
        raise PaymentRejected("Malformed EIP-3009 authorization.", code="invalid_payload") from None


def _issued_body(agent: AgentServices, lic: License) -> dict[str, Any]:
    return {
        "status": "license_issued",
        "payment_id": str(lic.id),
        "issued_at": lic.issued_at.isoformat() if lic.issued_at else None,
        "license_document": lic.document,
        "downloads": agent.licensing.download_urls(lic),
        "track": lic.track,
    }


def _x402_retry(
    agent: AgentServices,
    track_id: int,
    license_type: str,
    header: str,
    version: int,
    public: str,
    resource: str,
) -> Response[Any]:
    try:
        data = _decode_x402(header)
        auth, payment_id = _authorization(data, agent, version)
        view = agent.licensing.settle_x402(track_id, license_type, auth, payment_id)
    except PaymentRejected as e:
        log.info("x402_payment_rejected", reason=e.code, track_id=track_id)
        body: dict[str, Any] = {
            "x402Version": version,
            "error": e.code,
            "message": e.message,
            "accepts": [],
        }
        return Response(body, status_code=402)
    lic = view.license
    payment = lic.payment or {}
    settle = {
        "success": True,
        "transaction": payment.get("tx_hash"),
        "network": "base" if version == 1 else f"eip155:{lic.chain_id}",
        "payer": payment.get("payer"),
        "amount": str(lic.amount_units),
    }
    encoded = base64.b64encode(json.dumps(settle).encode()).decode()
    headers = {"PAYMENT-RESPONSE": encoded}
    if version == 1:
        headers["X-PAYMENT-RESPONSE"] = encoded
    return Response(_issued_body(agent, lic), status_code=200, headers=headers)


@post(
    "/license/{track_id:str}/{license_type:str}",
    summary="Initiate a license purchase",
    tags=["Agent licensing"],
    status_code=402,
)
async def license_initiate(
    request: Request[Any, Any, Any], track_id: FromPath[str], license_type: FromPath[str]
) -> Response[Any]:
    headers = await _limit(request, "agent-license")
    agent = _agent(request)
    public = _public(request)
    if not track_id.isdigit() or len(track_id) > 12:
        raise NotFound(TRACK_NOT_FOUND)
    if license_type not in LICENSE_TYPES:
        raise ValidationFailed(
            "Validation failed.",
            errors={
                "license_type": [
                    f"The selected license type is invalid (one of: {', '.join(LICENSE_TYPES)})."
                ]
            },
        )
    resource = f"{public}{PREFIX}/license/{track_id}/{license_type}"
    v2 = request.headers.get("payment-signature")
    v1 = request.headers.get("x-payment")
    if v2 or v1:
        response = await in_thread(
            _x402_retry,
            agent,
            int(track_id),
            license_type,
            v2 or v1 or "",
            2 if v2 else 1,
            public,
            resource,
        )
        response.headers.update(headers)
        return response
    body = await _json_body(request, required=False)
    wallet = body.get("paying_wallet")
    if wallet is not None and not isinstance(wallet, str):
        raise ValidationFailed(
            "Validation failed.", errors={"paying_wallet": ["The paying wallet must be a string."]}
        )
    lic = await in_thread(agent.licensing.request, int(track_id), license_type, wallet)
    version = 1 if request.query_params.get("x402_version") == "1" else 2
    payload, extra = _payment_required(lic, agent, public, resource, version)
    headers.update(extra)
    status = 200 if request.query_params.get("mode") == "gpt" else 402
    return Response(payload, status_code=status, headers=headers)


@get(
    "/license/verify/{payment_id:str}",
    summary="Verify payment and retrieve license",
    tags=["Agent licensing"],
)
async def license_verify(
    request: Request[Any, Any, Any], payment_id: FromPath[str]
) -> Response[Any]:
    agent = _agent(request)
    public = _public(request)
    try:
        pid = UUID(payment_id)
    except ValueError:
        raise NotFound("Payment ID not found.") from None
    try:
        view = await in_thread(agent.licensing.check, pid)
    except NotFound:
        raise NotFound("Payment ID not found.") from None
    lic = view.license
    if view.status == "license_issued":
        return Response(_issued_body(agent, lic), status_code=200)
    if view.status == "expired":
        return Response(
            {
                "status": "expired",
                "message": "The payment window expired before a matching payment was confirmed. "
                "Start a new license request.",
                "payment_id": str(lic.id),
                "new_license_url": f"{public}{PREFIX}/license/{lic.track_id}/{lic.license_type}",
            },
            status_code=410,
        )
    return Response(
        {
            "status": "awaiting_payment",
            "payment_id": str(lic.id),
            "message": f"Awaiting a confirmed transfer of exactly {format_usdc(lic.amount_units)} "
            f"USDC from {lic.paying_wallet or 'the declared wallet'} to {lic.receiving_address}.",
            "expires_at": lic.expires_at.isoformat(),
            "retry_after": "5 seconds",
            "verify_url": f"{public}{PREFIX}/license/verify/{lic.id}",
        },
        status_code=202,
        headers={"Retry-After": "5"},
    )


@get(
    "/downloads/{payment_id:str}/{fmt:str}",
    summary="Signed, expiring download of a licensed track",
    tags=["Agent licensing"],
)
async def license_download(
    request: Request[Any, Any, Any], payment_id: FromPath[str], fmt: FromPath[str]
) -> Response[Any]:
    agent = _agent(request)
    try:
        pid = UUID(payment_id)
        expires = int(request.query_params.get("expires", ""))
    except ValueError:
        raise NotFound("Download link is invalid.") from None
    if fmt not in FORMATS:
        raise NotFound("Download link is invalid.")
    signature = request.query_params.get("signature", "")
    lic = await in_thread(agent.licensing.check_download, pid, fmt, expires, signature)
    found = await in_thread(agent.download, lic, fmt)
    if found is None:
        raise NotFound("This format's file is not available.")
    data, media = found
    name = f"track-{lic.track_id}.{fmt}"
    return Response(
        data, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )


agent_router = Router(
    path=PREFIX,
    route_handlers=[
        catalog_search,
        catalog_track,
        ai_search,
        license_initiate,
        license_verify,
        license_download,
    ],
    exception_handlers={
        DomainError: agent_domain_error,
        ValidationException: agent_validation_error,
        HTTPException: agent_http_error,
        ChainError: agent_chain_error,
        Exception: agent_internal_error,
    },
)


# -- dev chain (loopback only, token from <data_dir>/dev_chain_token) ------------------------


def _dev_guard(request: Request[Any, Any, Any]) -> Any:
    agent = _agent(request)
    if not agent.is_dev_chain:
        raise NotFound("There is no dev chain on this server.")
    host = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    token = request.headers.get("x-dev-chain-token", "")
    if not loopback or not agent.dev_chain_token or token != agent.dev_chain_token:
        raise NotFound("Not found.")
    return agent.chain.get()


def _units(value: Any) -> int:
    from backline.domain.catalog import parse_usdc

    return parse_usdc(value, "amount")


@get("/info", include_in_schema=False)
async def dev_info(request: Request[Any, Any, Any]) -> dict[str, Any]:
    chain = _dev_guard(request)
    info: dict[str, Any] = await in_thread(chain.info)
    return info


@get("/accounts/{address:str}", include_in_schema=False)
async def dev_account(request: Request[Any, Any, Any], address: FromPath[str]) -> dict[str, Any]:
    chain = _dev_guard(request)
    if not (address.startswith("0x") and len(address) == 42):
        raise ValidationFailed("address must be a 0x address.", field="address")
    account: dict[str, Any] = await in_thread(chain.account, address)
    return account


@post("/fund", include_in_schema=False, status_code=200)
async def dev_fund(request: Request[Any, Any, Any]) -> dict[str, Any]:
    chain = _dev_guard(request)
    body = await _json_body(request, required=True)
    wallet = body.get("wallet")
    if not isinstance(wallet, str) or not (wallet.startswith("0x") and len(wallet) == 42):
        raise ValidationFailed("wallet must be a 0x address.", field="wallet")
    units = _units(body.get("amount"))
    tx_hash = await in_thread(chain.fund, wallet, units)
    account = await in_thread(chain.account, wallet)
    return {"tx_hash": tx_hash, "minted_units": units, "account": account}


@post("/pay", include_in_schema=False, status_code=200)
async def dev_pay(request: Request[Any, Any, Any]) -> dict[str, Any]:
    _dev_guard(request)
    body = await _json_body(request, required=True)
    try:
        pid = UUID(str(body.get("payment_id")))
    except ValueError:
        raise NotFound("Payment ID not found.") from None
    key = body.get("private_key")
    result: dict[str, Any] = await in_thread(
        _agent(request).dev_pay, pid, key if isinstance(key, str) and key else None
    )
    return result


@post("/send-raw", include_in_schema=False, status_code=200)
async def dev_send_raw(request: Request[Any, Any, Any]) -> dict[str, Any]:
    chain = _dev_guard(request)
    body = await _json_body(request, required=True)
    raw = body.get("raw_tx")
    if not isinstance(raw, str) or not raw.startswith("0x"):
        raise ValidationFailed("raw_tx must be 0x hex.", field="raw_tx")
    result: dict[str, Any] = await in_thread(chain.send_raw, raw)
    return result


@post("/mine", include_in_schema=False, status_code=200)
async def dev_mine(request: Request[Any, Any, Any]) -> dict[str, Any]:
    chain = _dev_guard(request)
    body = await _json_body(request, required=False)
    blocks = body.get("blocks", 1)
    if not isinstance(blocks, int) or not 1 <= blocks <= 1000:
        raise ValidationFailed("blocks must be 1..1000.", field="blocks")
    head = await in_thread(chain.mine, blocks)
    return {"block_number": head.number, "block_timestamp": head.timestamp}


dev_chain_router = Router(
    path="/dev-chain",
    route_handlers=[dev_info, dev_account, dev_fund, dev_pay, dev_send_raw, dev_mine],
    exception_handlers={
        DomainError: agent_domain_error,
        ValidationException: agent_validation_error,
        HTTPException: agent_http_error,
        ChainError: agent_chain_error,
        Exception: agent_internal_error,
    },
)

"""ASGI entry point: ``uvicorn backline.infra.asgi:app_factory --factory``."""

from __future__ import annotations

from litestar import Litestar

from backline.api.app import create_app
from backline.api.deps import ApiConfig
from backline.infra.container import Container
from backline.infra.logging import configure_logging
from backline.infra.settings import Settings


def api_config(settings: Settings) -> ApiConfig:
    return ApiConfig(
        public_url=settings.public_url,
        secret_key=settings.secret_key,
        cookie_secure=settings.cookie_secure,
        production=settings.production,
        max_request_bytes=settings.max_request_bytes,
        aimd_origin=settings.aimd_origin,
        allowed_origins=settings.allowed_origins,
        first_party_client_ids=settings.first_party_client_ids,
        rate_limit_v1_read=settings.rate_limit_v1_read,
        rate_limit_v1_write=settings.rate_limit_v1_write,
        rate_limit_mcp=settings.rate_limit_mcp,
        rate_limit_auth=settings.rate_limit_auth,
        rate_limit_first_party=settings.rate_limit_first_party,
    )


def build_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    container = Container.build(settings)
    return create_app(container, api_config(settings))


def app_factory() -> Litestar:
    return build_app()

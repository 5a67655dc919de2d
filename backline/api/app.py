"""Litestar application factory: every surface, middleware and error mapping in one place."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.config.csrf import CSRFConfig
from litestar.middleware.base import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.template.config import TemplateConfig

from backline.api.agent import agent_router, dev_chain_router
from backline.api.credits import CreditsController, SandboxCheckoutController
from backline.api.deps import ApiConfig, Services
from backline.api.errors import EXCEPTION_HANDLERS
from backline.api.keys import ApiKeysController, v1_me
from backline.api.mcp.endpoint import mcp_endpoint
from backline.api.middleware import BearerAwareCSRFMiddleware, RequestIdMiddleware
from backline.api.oauth import ROUTES as OAUTH_ROUTES
from backline.api.profile import ProfileController
from backline.api.ratelimit import RateLimitMiddleware
from backline.api.releases import ReleasesController
from backline.api.system import health, openapi_json
from backline.api.uploads import ROUTES as UPLOAD_ROUTES
from backline.api.users import UsersController

TEMPLATES = Path(__file__).parent / "templates"

# Paths authenticated by something other than the session cookie (bearer tokens, upload
# tokens, signatures) or that are public and stateless: no CSRF cookie check.
CSRF_EXEMPT = [
    "^/api/mcp",
    "^/oauth/token",
    "^/oauth/register",
    "^/oauth/revoke",
    "^/api/stripe/webhook",
    "^/api/v1/",
    "^/dev-chain/",  # loopback only, token from the data dir
]


def create_app(services: Services, config: ApiConfig, *, start_background: bool = True) -> Litestar:
    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        if start_background:
            services.start_background()
        try:
            yield
        finally:
            services.close()

    csrf = CSRFConfig(
        secret=config.secret_key,
        cookie_secure=config.cookie_secure,
        cookie_samesite="lax",
        exclude=CSRF_EXEMPT,
    )
    app = Litestar(
        route_handlers=[
            health,
            openapi_json,
            UsersController,
            ProfileController,
            CreditsController,
            SandboxCheckoutController,
            *OAUTH_ROUTES,
            mcp_endpoint,
            ApiKeysController,
            v1_me,
            agent_router,
            dev_chain_router,
            UPLOAD_ROUTES,
            ReleasesController,
        ],
        middleware=[
            RequestIdMiddleware,
            RateLimitMiddleware,
            DefineMiddleware(BearerAwareCSRFMiddleware, config=csrf),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        template_config=TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine),
        openapi_config=OpenAPIConfig(
            title="Backline",
            version="0.1.0",
            description="Event-sourced backend for independent musicians and their agents.",
            path="/schema",
        ),
        lifespan=[lifespan],
        request_max_body_size=config.max_request_bytes,
        debug=False,
        logging_config=None,
    )
    app.state.services = services
    app.state.api_config = config
    return app

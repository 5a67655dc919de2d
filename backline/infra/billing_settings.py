"""Settings of credits and payments (issue 5), read once from ``BACKLINE_*`` variables.

| variable | default | meaning |
|---|---|---|
| ``BACKLINE_STRIPE_SECRET_KEY`` | — | Stripe secret key; unset = the offline ``sandbox`` provider |
| ``BACKLINE_STRIPE_PUBLISHABLE_KEY`` | — | returned to embedded-checkout clients |
| ``BACKLINE_STRIPE_WEBHOOK_SECRET`` | — | ``whsec_…``; required with a Stripe key in production |
| ``BACKLINE_STRIPE_API_BASE`` | Stripe's | API base URL (tests point it at a local peer) |
| ``BACKLINE_CHECKOUT_RETURN_URL`` | AIMD's return endpoint | default ``successPath`` |
| ``BACKLINE_AUTORELOAD_IN_PROCESS`` | on | run the auto-reload process manager in the server |

The sandbox provider signs its events with a webhook secret derived from the secret key;
it is refused in production mode.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_RETURN_URL = "https://app.aimusicdistro.com/api/once/checkout-return"


class BillingSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class BillingSettings:
    stripe_secret_key: str = ""
    stripe_publishable_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""
    checkout_return_url: str = DEFAULT_RETURN_URL
    autoreload_in_process: bool = True

    @property
    def use_stripe(self) -> bool:
        return bool(self.stripe_secret_key)

    @staticmethod
    def from_env(env: Mapping[str, str], *, production: bool) -> BillingSettings:
        def get(name: str, default: str = "") -> str:
            return env.get(f"BACKLINE_{name}", default)

        secret = get("STRIPE_SECRET_KEY", "").strip()
        webhook = get("STRIPE_WEBHOOK_SECRET", "").strip()
        base = get("STRIPE_API_BASE", "").strip().rstrip("/")
        if base and not base.startswith(("http://", "https://")):
            raise BillingSettingsError("BACKLINE_STRIPE_API_BASE must be an http(s) URL")
        if production and secret and not webhook:
            raise BillingSettingsError(
                "BACKLINE_STRIPE_WEBHOOK_SECRET is required with a Stripe key in production"
            )
        return_url = get("CHECKOUT_RETURN_URL", "").strip() or DEFAULT_RETURN_URL
        if not return_url.startswith(("https://", "http://")):
            raise BillingSettingsError("BACKLINE_CHECKOUT_RETURN_URL must be an http(s) URL")
        in_process = get("AUTORELOAD_IN_PROCESS", "1").strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
        return BillingSettings(
            stripe_secret_key=secret,
            stripe_publishable_key=get("STRIPE_PUBLISHABLE_KEY", "").strip(),
            stripe_webhook_secret=webhook,
            stripe_api_base=base,
            checkout_return_url=return_url,
            autoreload_in_process=in_process,
        )

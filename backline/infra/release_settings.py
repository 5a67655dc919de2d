"""Settings of releases and delivery (issue 6), read once from ``BACKLINE_*`` variables.

Variables (all ``BACKLINE_*``; defaults in brackets):

* ``ISRC_PREFIX`` [``ZZ-BLN``, placeholder]: country + registrant code of assigned ISRCs
* ``UPC_PREFIX`` [``020000``, placeholder]: GS1 company prefix (6-10 digits) of UPC-As
* ``RELEASE_STORES`` [``spotify,apple_music,amazon_music``]: where releases go
* ``STORE_LATENCY`` [3]: simulator seconds from delivery to live (a quarter is transfer)
* ``STORE_FAILURE_RATE`` [0]: simulator chance (0..1) that a delivery fails (503)
* ``STORE_FAILURE_RATES`` [none]: per store, e.g. ``tidal=1.0,deezer=0.2``
* ``DELIVERY_MAX_ATTEMPTS`` [5]: attempts per store before it is ``failed``
* ``DELIVERY_BACKOFF`` [2]: first retry delay in seconds (doubles, capped at 300)
* ``DELIVERY_LEASE`` [60]: seconds a worker holds a job before another may resume it
* ``DELIVERY_WORKER_IN_PROCESS`` [on]: run the delivery worker inside the server
* ``DDEX_XSD_DIR`` [none]: directory with the official ERN 4.3 ``release-notification.xsd``
* ``DDEX_SENDER_DPID`` / ``DDEX_SENDER_NAME`` [placeholder / Backline]: MessageSender
* ``RATE_LIMIT_SUBMIT`` [``10 per 60 seconds``]: per-account submit budget

The placeholder ISRC/UPC prefixes are not registered with any agency: production must set
its own (production mode warns when they are unset).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backline.domain.identifiers import check_registrant_prefix, check_upc_prefix

PLACEHOLDER_ISRC_PREFIX = "ZZBLN"
PLACEHOLDER_UPC_PREFIX = "020000"
DEFAULT_STORES = ("spotify", "apple_music", "amazon_music")
PLACEHOLDER_DPID = "PADPIDA00BACKLINE0"


class ReleaseSettingsError(ValueError):
    pass


@dataclass(frozen=True)
class ReleaseSettings:
    isrc_prefix: str = PLACEHOLDER_ISRC_PREFIX
    upc_prefix: str = PLACEHOLDER_UPC_PREFIX
    stores: tuple[str, ...] = DEFAULT_STORES
    store_latency: float = 3.0
    store_failure_rate: float = 0.0
    store_failure_rates: dict[str, float] = field(default_factory=dict)
    max_attempts: int = 5
    backoff_base: float = 2.0
    lease_seconds: float = 60.0
    worker_in_process: bool = True
    xsd_dir: Path | None = None
    sender_dpid: str = PLACEHOLDER_DPID
    sender_name: str = "Backline"
    rate_limit_submit: str = "10 per 60 seconds"

    @staticmethod
    def from_env(get: Callable[..., str], *, production: bool) -> ReleaseSettings:
        """``get(NAME, default)`` reads ``BACKLINE_NAME``."""

        def number(name: str, default: float, low: float, high: float) -> float:
            raw = (get(name, "") or "").strip()
            if not raw:
                return default
            try:
                value = float(raw)
            except ValueError:
                raise ReleaseSettingsError(f"BACKLINE_{name} must be a number") from None
            if not low <= value <= high:
                raise ReleaseSettingsError(f"BACKLINE_{name} must be between {low} and {high}")
            return value

        try:
            isrc = check_registrant_prefix(get("ISRC_PREFIX", "") or PLACEHOLDER_ISRC_PREFIX)
            upc = check_upc_prefix(get("UPC_PREFIX", "") or PLACEHOLDER_UPC_PREFIX)
        except ValueError as e:
            raise ReleaseSettingsError(str(e)) from None
        if production and (isrc == PLACEHOLDER_ISRC_PREFIX or upc == PLACEHOLDER_UPC_PREFIX):
            warnings.warn(
                "BACKLINE_ISRC_PREFIX / BACKLINE_UPC_PREFIX are unset: assigned ISRCs and UPCs "
                "use unregistered placeholder prefixes",
                stacklevel=2,
            )
        stores = tuple(
            s.strip().lower()
            for s in (get("RELEASE_STORES", "") or ",".join(DEFAULT_STORES)).split(",")
            if s.strip()
        )
        if not stores or any(not s.replace("_", "").replace("-", "").isalnum() for s in stores):
            raise ReleaseSettingsError(
                "BACKLINE_RELEASE_STORES must list store names (letters, digits, _ and -)"
            )
        rates: dict[str, float] = {}
        for item in (get("STORE_FAILURE_RATES", "") or "").split(","):
            if not item.strip():
                continue
            name, _, value = item.partition("=")
            try:
                rate = float(value)
            except ValueError:
                raise ReleaseSettingsError(
                    "BACKLINE_STORE_FAILURE_RATES must look like store=0.5,other=1"
                ) from None
            if not 0 <= rate <= 1:
                raise ReleaseSettingsError("failure rates are between 0 and 1")
            rates[name.strip().lower()] = rate
        xsd = (get("DDEX_XSD_DIR", "") or "").strip()
        in_process = (get("DELIVERY_WORKER_IN_PROCESS", "1") or "1").strip().lower()
        limit = (get("RATE_LIMIT_SUBMIT", "") or "").strip() or "10 per 60 seconds"
        try:
            from limits import parse

            parse(limit)
        except ValueError:
            raise ReleaseSettingsError(
                "BACKLINE_RATE_LIMIT_SUBMIT must look like '10 per 60 seconds'"
            ) from None
        return ReleaseSettings(
            isrc_prefix=isrc,
            upc_prefix=upc,
            stores=stores,
            store_latency=number("STORE_LATENCY", 3.0, 0.0, 3600.0),
            store_failure_rate=number("STORE_FAILURE_RATE", 0.0, 0.0, 1.0),
            store_failure_rates=rates,
            max_attempts=int(number("DELIVERY_MAX_ATTEMPTS", 5, 1, 100)),
            backoff_base=number("DELIVERY_BACKOFF", 2.0, 0.0, 3600.0),
            lease_seconds=number("DELIVERY_LEASE", 60.0, 1.0, 3600.0),
            worker_in_process=in_process not in ("0", "false", "no", "off"),
            xsd_dir=Path(xsd).expanduser() if xsd else None,
            sender_dpid=(get("DDEX_SENDER_DPID", "") or PLACEHOLDER_DPID).strip(),
            sender_name=(get("DDEX_SENDER_NAME", "") or "Backline").strip(),
            rate_limit_submit=limit,
        )

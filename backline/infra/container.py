"""Composition root: builds every port's adapter from settings, once per process."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

import structlog

from backline.adapters.msgspec_mapper import make_msgspec_mapper
from backline.adapters.passwords import Argon2Hasher
from backline.adapters.sandbox_payments import SandboxPayments
from backline.application.accounts import AccountService
from backline.application.api_keys import ApiKeyService
from backline.application.autoreload import AutoReloadManager
from backline.application.billing import BillingService
from backline.application.credits import CreditService
from backline.application.oauth import OAuthPolicy, OAuthService
from backline.application.releases import ReleaseService
from backline.application.sessions import SessionService
from backline.application.store import EventStore
from backline.application.uploads import UploadService
from backline.infra.agent_wiring import AgentLicensing
from backline.infra.billing_wiring import billing_services
from backline.infra.release_wiring import ReleaseWiring, build_releases
from backline.infra.settings import Settings
from backline.infra.uploads_wiring import build_upload_service
from backline.projections.catalog import CatalogProjection
from backline.projections.credentials import CredentialQueries, CredentialsProjection
from backline.projections.credits import CreditHistoryProjection, CreditQueries
from backline.projections.db import ReadStore, sqlite_path
from backline.projections.framework import Projection, ProjectionRunner
from backline.projections.kv import KeyValueTable
from backline.projections.licenses import LicenseProjection
from backline.projections.profiles import ProfileProjection, ProfileQueries
from backline.projections.ratelimits import SqlRateLimitStorage
from backline.projections.releases import ReleaseQueries, ReleaseStatusProjection

log = structlog.get_logger(__name__)


def event_store_env(database_url: str) -> dict[str, str]:
    """Translate ``BACKLINE_DATABASE_URL`` into the eventsourcing library's settings."""
    if database_url.startswith("sqlite"):
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": sqlite_path(database_url),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    parsed = urlparse(database_url)
    env = {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": (parsed.path or "/").lstrip("/") or "postgres",
        "POSTGRES_HOST": parsed.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(parsed.port or 5432),
        "POSTGRES_USER": unquote(parsed.username or "postgres"),
        "POSTGRES_PASSWORD": unquote(parsed.password or ""),
        "POSTGRES_POOL_SIZE": "4",
        "POSTGRES_MAX_OVERFLOW": "4",
        "POSTGRES_CONN_MAX_AGE": "600",
        "POSTGRES_PRE_PING": "y",
        "POSTGRES_LOCK_TIMEOUT": "10",
        "POSTGRES_ENABLE_DB_FUNCTIONS": "n",
    }
    schema = parse_qs(parsed.query).get("schema")
    if schema:
        env["POSTGRES_SCHEMA"] = schema[0]
    return env


# A pooled connection handed back less than this long ago skips the pre-ping.
PRE_PING_AFTER_IDLE = 2.0


def ping_idle_connections_only(store: EventStore, idle: float = PRE_PING_AFTER_IDLE) -> None:
    """Make the event store pool's pre-ping skip connections that were just in use.

    ``POSTGRES_PRE_PING`` checks every connection at checkout with one empty query: a
    round trip on every read and write (about one in three of a submission's). A
    connection that came back to the pool (the pool discards broken ones on return)
    under ``idle`` seconds ago is handed out as is; one idle for longer, or never seen,
    is pinged as before, so connections dropped while idle are still caught. Should a
    connection die within that window, the recorder's own retry on
    ``OperationalError``/``InterfaceError`` takes the next one.
    """
    pool: Any = getattr(getattr(store.recorder, "datastore", None), "pool", None)
    ping = getattr(pool, "_check", None)  # psycopg_pool keeps the check callback here
    if ping is None:
        return

    def check(conn: Any) -> None:
        now = time.monotonic()
        last = getattr(conn, "_backline_used_at", None)
        if last is None or now - last >= idle or conn.closed or conn.broken:
            ping(conn)
        conn._backline_used_at = now

    pool._check = check


def binary_event_inserts(store: EventStore) -> None:
    """Send the events of an insert to PostgreSQL in binary, with statements rendered once.

    The library passes the events as an array of its composite type with ``%s``, which
    psycopg dumps as text: every event's state is hex-escaped and quoted in Python, about
    0.5 ms of CPU per submission (nine events). ``%b`` sends the same values in binary
    (the binary dumper of the composite is registered with the text one). Its statements
    are also ``Composed`` objects re-rendered (identifiers, literals) on every execution;
    rendered once here they are plain SQL. The values stored are the same.
    """
    from eventsourcing.postgres import PostgresAggregateRecorder
    from psycopg.sql import SQL

    recorder: Any = store.recorder
    if not isinstance(recorder, PostgresAggregateRecorder):
        return
    insert = recorder.insert_events_statement.as_string(None)
    binary = insert.replace("FROM unnest(%s::", "FROM unnest(%b::", 1)
    if binary != insert and binary.count("%") == 1:
        recorder.insert_events_statement = SQL(binary)  # type: ignore[assignment]
    recorder.select_events_statement = SQL(  # type: ignore[assignment]
        recorder.select_events_statement.as_string(None)
    )
    lock_statements = getattr(recorder, "lock_table_statements", None)
    if lock_statements:
        recorder.lock_table_statements = [SQL(q.as_string(None)) for q in lock_statements]


def read_store_url(database_url: str) -> str:
    parsed = urlparse(database_url)
    if parsed.query and not database_url.startswith("sqlite"):
        # The schema option is the event store's; read models use search_path via options.
        schema = parse_qs(parsed.query).get("schema")
        base = database_url.split("?", 1)[0]
        if schema:
            return f"{base}?options=-csearch_path%3D{schema[0]}"
        return base
    return database_url


def all_projections() -> list[Projection]:
    return [
        CreditHistoryProjection(),
        ProfileProjection(),
        CredentialsProjection(),
        CatalogProjection(),
        LicenseProjection(),
        ReleaseStatusProjection(),
    ]


@dataclass
class Container:
    settings: Settings
    store: EventStore
    read: ReadStore
    runner: ProjectionRunner
    accounts: AccountService
    profiles: ProfileQueries
    kv: KeyValueTable
    sessions: SessionService
    # credits and payments (issue 5)
    credits: CreditService
    billing: BillingService
    credit_queries: CreditQueries
    sandbox_payments: SandboxPayments | None
    autoreload: AutoReloadManager
    oauth: OAuthService
    api_keys: ApiKeyService
    credentials: CredentialQueries
    rate_limits: SqlRateLimitStorage
    agent: AgentLicensing
    uploads: UploadService
    # releases and delivery (issue 6)
    releases: ReleaseService
    release_queries: ReleaseQueries
    delivery: ReleaseWiring

    @classmethod
    def build(cls, settings: Settings) -> Container:
        if settings.is_sqlite:
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            path = sqlite_path(settings.database_url)
            if path and path != ":memory:":
                from pathlib import Path

                Path(path).parent.mkdir(parents=True, exist_ok=True)
        store = EventStore(
            env=event_store_env(settings.database_url), mapper_factory=make_msgspec_mapper
        )
        ping_idle_connections_only(store)
        binary_event_inserts(store)
        read = ReadStore(read_store_url(settings.database_url))
        runner = ProjectionRunner(
            store, read, all_projections(), batch_size=settings.projection_batch_size
        )
        runner.setup()
        kv = KeyValueTable(read)
        kv.setup()
        rate_limits = SqlRateLimitStorage(read)
        rate_limits.setup()
        hasher = Argon2Hasher(fast=settings.fast_password_hashing)
        billing = billing_services(settings, store, read, kv)
        uploads = build_upload_service(settings.uploads, settings.data_dir, store)
        delivery = build_releases(
            settings.releases,
            data_dir=settings.data_dir,
            store=store,
            read=read,
            credits=billing["credits"],
            billing=billing["billing"],
            uploads=uploads,
        )
        return cls(
            settings=settings,
            store=store,
            read=read,
            runner=runner,
            accounts=AccountService(store, hasher),
            profiles=ProfileQueries(read),
            kv=kv,
            sessions=SessionService(kv),
            **billing,
            oauth=OAuthService(
                store,
                OAuthPolicy(
                    access_ttl=settings.oauth_access_ttl,
                    refresh_grace=float(settings.oauth_refresh_grace_seconds),
                ),
            ),
            api_keys=ApiKeyService(store),
            credentials=CredentialQueries(read),
            rate_limits=rate_limits,
            agent=AgentLicensing.build(settings, store, read),
            uploads=uploads,
            releases=delivery.service,
            release_queries=delivery.queries,
            delivery=delivery,
        )

    def start_background(self) -> None:
        if self.settings.projections_in_process:
            self.runner.start()
        if self.settings.billing.autoreload_in_process:
            self.autoreload.start()
        self.agent.start_background(self.runner)
        self.delivery.start(self.settings.releases.worker_in_process)

    def close(self) -> None:
        self.delivery.close()
        self.autoreload.stop()
        self.agent.close()
        self.runner.stop()
        self.read.close()
        self.store.close()

    def health(self, verbose: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"status": "ok"}
        if verbose:
            statuses = self.runner.status()
            body["event_store"] = {
                "backend": "sqlite" if self.settings.is_sqlite else "postgres",
                "head": self.store.max_position(),
            }
            body["projections"] = {s.name: {"position": s.position, "lag": s.lag} for s in statuses}
        return body

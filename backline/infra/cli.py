"""The ``backline`` command line."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from typing import Any

import click

from backline.infra.settings import Settings, SettingsError


def _settings() -> Settings:
    try:
        return Settings.from_env()
    except SettingsError as e:
        raise click.ClickException(str(e)) from None


def _container(settings: Settings | None = None, *, log: bool = True) -> Any:
    from backline.infra.container import Container
    from backline.infra.logging import configure_logging

    settings = settings or _settings()
    if log:
        configure_logging(settings.log_format, settings.log_level)
    return Container.build(settings)


@click.group()
def main() -> None:
    """Backline: distribution, analytics, audio and licensing for independent musicians."""


@main.command()
@click.option(
    "--host", default=None, help="Interface to bind (default BACKLINE_HOST or 127.0.0.1)."
)
@click.option("--port", default=None, type=int, help="Port (default BACKLINE_PORT or 8000).")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
def serve(host: str | None, port: int | None, workers: int) -> None:
    """Run the HTTP API (and, on the embedded default, the projection runner)."""
    import uvicorn

    settings = _settings()
    host = host or settings.host
    port = port or settings.port
    os.environ["BACKLINE_HOST"] = host
    os.environ["BACKLINE_PORT"] = str(port)
    if not os.environ.get("BACKLINE_PUBLIC_URL"):
        os.environ["BACKLINE_PUBLIC_URL"] = f"http://{host}:{port}"
    # Create the data dir and secret once, before workers fork.
    _settings()
    from backline.infra.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    uvicorn.run(
        "backline.infra.asgi:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        timeout_graceful_shutdown=10,
    )


# -- accounts -------------------------------------------------------------------------


@main.group()
def accounts() -> None:
    """Manage accounts."""


@accounts.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Grant the admin role.")
@click.option("--first-name", default="")
@click.option("--last-name", default="")
def accounts_create(email: str, admin: bool, first_name: str, last_name: str) -> None:
    """Create an account; the password is read from stdin (or prompted for)."""
    from backline.domain.errors import DomainError

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    c = _container(log=False)
    try:
        result = c.accounts.register(
            email, password, first_name, last_name, is_admin=admin, provenance="CLI"
        )
        c.runner.catch_up()
    except DomainError as e:
        raise click.ClickException(f"{e.code}: {e.message}") from None
    finally:
        c.close()
    click.echo(f"created {result.account_id} {result.email}{' (admin)' if admin else ''}")


# -- projections ------------------------------------------------------------------------


@main.group()
def projections() -> None:
    """Run, rebuild and inspect read-model projections."""


@projections.command("run")
@click.option("--once", is_flag=True, help="Catch up and exit instead of following the log.")
def projections_run(once: bool) -> None:
    """Run the projection worker (separate process; for Postgres deployments)."""
    c = _container()
    delay = float(os.environ.get("BACKLINE_PROJECTION_COMMIT_DELAY", "0") or 0)
    if delay > 0:
        # Fault-injection for crash tests: hold each batch's transaction open a while.
        c.runner.before_commit = lambda _name, _pos: time.sleep(delay)
    try:
        if once:
            n = c.runner.catch_up()
            click.echo(f"processed {n} events")
            return
        stop = threading.Event()

        def _stop(*_: Any) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        click.echo("projection worker running; Ctrl-C to stop", err=True)
        c.runner.run_forever(stop)
    finally:
        c.close()


@projections.command("rebuild")
@click.argument("name")
def projections_rebuild(name: str) -> None:
    """Drop a projection's tables and replay the whole event log into them."""
    c = _container()
    try:
        if name not in c.runner.projections:
            raise click.ClickException(
                f"unknown projection {name!r}; known: {', '.join(sorted(c.runner.projections))}"
            )
        started = time.perf_counter()
        n = c.runner.rebuild(name)
        elapsed = time.perf_counter() - started
        rate = n / elapsed if elapsed > 0 else 0.0
        click.echo(f"rebuilt {name}: {n} events in {elapsed:.2f}s ({rate:,.0f} events/s)")
    finally:
        c.close()


@projections.command("status")
def projections_status() -> None:
    """Position and lag of every projection."""
    c = _container(log=False)
    try:
        click.echo(f"{'projection':<24}{'version':>8}{'position':>12}{'head':>12}{'lag':>10}")
        for s in c.runner.status():
            click.echo(f"{s.name:<24}{s.version:>8}{s.position:>12}{s.head:>12}{s.lag:>10}")
    finally:
        c.close()


# -- events -----------------------------------------------------------------------------


@main.group()
def events() -> None:
    """Inspect the event store."""


@events.command("tail")
@click.option("--from", "start", default=None, type=int, help="First position (default: last 20).")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 10000))
@click.option("--follow", "-f", is_flag=True, help="Keep printing new events.")
def events_tail(start: int | None, limit: int, follow: bool) -> None:
    """Print the notification log: position, topic, aggregate, version, state."""
    c = _container(log=False)
    try:
        head = c.store.max_position()
        position = max(0, head - limit) if start is None else max(0, start - 1)
        while True:
            notes = c.store.recorder.select_notifications(
                start=position, limit=limit, inclusive_of_start=False
            )
            for n in notes:
                state = _redact(n.state.decode(errors="replace"))
                click.echo(
                    f"{n.id}\t{n.topic}\t{n.originator_id}\tv{n.originator_version}\t{state}"
                )
                position = n.id
            if not follow:
                break
            if not notes:
                time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        c.close()


def _redact(state: str) -> str:
    import re

    return re.sub(
        r'"([a-z_]*(?:password|secret|token)[a-z_]*)":"[^"]*"', r'"\1":"[redacted]"', state
    )


# -- OAuth clients and tokens (issue 3) ---------------------------------------------------


@main.group()
def oauth() -> None:
    """OAuth 2.1 authorization server administration."""


@oauth.group("clients")
def oauth_clients() -> None:
    """Dynamically registered OAuth clients."""


@oauth_clients.command("list")
def oauth_clients_list() -> None:
    """Every registered client: id, name, redirect URIs, status."""
    c = _container(log=False)
    try:
        c.runner.catch_up("credentials")
        for row in c.credentials.clients():
            status = "revoked" if row["revoked"] else "active"
            uris = " ".join(row["redirect_uris"] or [])
            click.echo(f"{row['client_id']}\t{status}\t{row['client_name'] or '-'}\t{uris}")
    finally:
        c.close()


@oauth_clients.command("revoke")
@click.argument("client_id")
def oauth_clients_revoke(client_id: str) -> None:
    """Revoke a client: its tokens stop working at once, it can no longer sign in."""
    c = _container(log=False)
    try:
        if not c.oauth.revoke_client(client_id):
            raise click.ClickException(f"unknown client {client_id!r}")
        c.runner.catch_up("credentials")
    finally:
        c.close()
    click.echo(f"revoked {client_id}")


@main.group()
def tokens() -> None:
    """Operator escape hatch: mint OAuth access tokens."""


@tokens.command("issue")
@click.argument("email")
@click.option("--scope", default="once:mcp", show_default=True)
def tokens_issue(email: str, scope: str) -> None:
    """Print an access token (and refresh token) for EMAIL's account."""
    from backline.domain.errors import DomainError

    c = _container(log=False)
    try:
        account_id = c.accounts.account_id_for_email(email)
        if account_id is None:
            raise click.ClickException(f"no account with email {email!r}")
        try:
            issued = c.oauth.issue_direct(
                account_id,
                client_id="backline-cli",
                scope=scope,
                audience=f"{c.settings.public_url}/api/mcp",
                via="cli",
            )
        except DomainError as e:
            raise click.ClickException(f"{e.code}: {e.message}") from None
    finally:
        c.close()
    click.echo(issued.access_token)
    click.echo(f"# refresh_token {issued.refresh_token}", err=True)
    click.echo(f"# expires_in {issued.expires_in}s, scope {issued.scope}", err=True)


# -- credit ledgers (issue 5) ------------------------------------------------------------


@main.group()
def ledger() -> None:
    """Audit and export credit ledgers."""


def _account_uuid(value: str) -> Any:
    from uuid import UUID

    try:
        return UUID(value)
    except ValueError:
        raise click.BadParameter(f"not an account id: {value!r}") from None


@ledger.command("audit")
@click.option("--account", default=None, help="Audit one account's ledger only.")
@click.option("--no-catch-up", is_flag=True, help="Compare with the projection as it is.")
def ledger_audit(account: str | None, no_catch_up: bool) -> None:
    """Replay ledgers from their events and compare with the credit history projection.

    Exits 1 on any difference (balances, totals or any transaction).
    """
    from backline.projections.credits import LedgerAuditor

    account_id = _account_uuid(account) if account else None
    c = _container(log=False)
    try:
        if not no_catch_up:
            c.runner.catch_up("credit_history")
        started = time.perf_counter()
        report = LedgerAuditor(c.store, c.read).audit(account_id)
        elapsed = time.perf_counter() - started
    finally:
        c.close()
    rate = report.events / elapsed if elapsed > 0 else 0.0
    for line in report.differences:
        click.echo(f"DIFFERENCE {line}")
    status = "OK" if report.ok else f"FAILED ({len(report.differences)} differences)"
    click.echo(
        f"ledger audit {status}: {report.ledgers} ledgers, {report.events} transactions up to "
        f"position {report.position} in {elapsed:.2f}s ({rate:,.0f} events/s)"
    )
    if not report.ok:
        sys.exit(1)


@ledger.command("export")
@click.option("--account", required=True, help="Account id.")
@click.option("--format", "fmt", type=click.Choice(["csv", "json"]), default="csv")
def ledger_export(account: str, fmt: str) -> None:
    """Print every transaction of one account's ledger, from the event store."""
    from backline.projections.credits import export_ledger

    account_id = _account_uuid(account)
    c = _container(log=False)
    try:
        click.echo(export_ledger(c.store, account_id, fmt), nl=False)
    finally:
        c.close()


# -- agent licensing (issue 7): catalog, licenses, dev-chain ------------------------------
from backline.infra.cli_agent import register as _register_agent  # noqa: E402

_register_agent(main)

# -- releases (issue 6): the delivery worker, job status -----------------------------------
from backline.infra.cli_releases import register as _register_releases  # noqa: E402

_register_releases(main)


if __name__ == "__main__":
    main()

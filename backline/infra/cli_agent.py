"""CLI of agent licensing: ``catalog``, ``licenses`` and ``dev-chain`` command groups."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import click


def _container(log: bool = False) -> Any:
    from backline.infra.cli import _container as build

    return build(log=log)


def _settings() -> Any:
    from backline.infra.cli import _settings as read

    return read()


# -- catalog ------------------------------------------------------------------------------


@click.group()
def catalog() -> None:
    """Manage the licensing catalog."""


def _import(records: Any, source: str, demo: bool, strict: bool) -> None:
    c = _container()
    try:
        started = time.perf_counter()
        report = c.agent.catalog.import_records(records, source=source, demo=demo, strict=strict)
        c.runner.catch_up("catalog", batch_size=5000)
        elapsed = time.perf_counter() - started
        for err in report.errors[:50]:
            field = f" [{err['field']}]" if err.get("field") else ""
            click.echo(f"line {err['line']}: {err['code']}{field}: {err['message']}", err=True)
        if len(report.errors) > 50:
            click.echo(f"... and {len(report.errors) - 50} more errors", err=True)
        click.echo(
            f"listed {report.listed}, unchanged {report.unchanged}, "
            f"invalid {len(report.errors)} in {elapsed:.2f}s"
        )
        if report.errors and strict:
            sys.exit(1)
    finally:
        c.close()


@catalog.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--strict", is_flag=True, help="Write nothing if any line is invalid.")
def catalog_import(file: Path, strict: bool) -> None:
    """Import tracks from a JSON Lines file (idempotent by external_id)."""
    from backline.application.catalog import read_jsonl

    _import(read_jsonl(file), source=f"import:{file.name}", demo=False, strict=strict)


@catalog.command("generate")
@click.option("--tracks", default=5000, show_default=True, type=click.IntRange(1, 1_000_000))
@click.option("--seed", default=7, show_default=True, type=int)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write JSON Lines to this file ('-' for stdout) instead of loading them.",
)
def catalog_generate(tracks: int, seed: int, output: Path | None) -> None:
    """Generate a synthetic demo catalog (marked demo: true, ids demo-NNNNNN)."""
    from backline.application.demo_catalog import generate_demo_tracks

    records = generate_demo_tracks(tracks, seed=seed)
    if output is not None:
        out = sys.stdout if str(output) == "-" else output.open("w", encoding="utf-8")
        try:
            for record in records:
                out.write(json.dumps(record) + "\n")
        finally:
            if out is not sys.stdout:
                out.close()
        if str(output) != "-":
            click.echo(f"wrote {tracks} demo tracks to {output}")
        return
    _import(enumerate(records, start=1), source="demo", demo=True, strict=False)


# -- licenses -----------------------------------------------------------------------------


@click.group()
def licenses() -> None:
    """Issued licenses."""


@licenses.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def licenses_verify(file: Path) -> None:
    """Check a license document's HMAC-SHA256 signature (the document or a verify response)."""
    from backline.domain.licensing import verify_document

    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except ValueError as e:
        raise click.ClickException(f"not JSON: {e}") from None
    if isinstance(data, dict) and isinstance(data.get("license_document"), dict):
        data = data["license_document"]
    if not isinstance(data, dict):
        raise click.ClickException("not a license document")
    key = _settings().licensing.signing_key_bytes()
    if verify_document(data, key):
        click.echo(f"valid: license {data.get('license_id')} (signature HMAC-SHA256 ok)")
        return
    click.echo(f"INVALID: license {data.get('license_id')} signature does not match", err=True)
    sys.exit(1)


# -- dev chain ----------------------------------------------------------------------------


@click.group("dev-chain")
@click.option("--url", default=None, help="The running server (default BACKLINE_PUBLIC_URL).")
@click.pass_context
def dev_chain(ctx: click.Context, url: str | None) -> None:
    """Act on the running server's in-process dev chain (loopback only)."""
    settings = _settings()
    token_file = Path(settings.data_dir) / "dev_chain_token"
    if not token_file.exists():
        raise click.ClickException(
            f"no {token_file}: start the server (backline serve) on the dev chain first"
        )
    ctx.obj = {
        "url": (url or settings.public_url).rstrip("/"),
        "token": token_file.read_text().strip(),
    }


def _call(ctx: click.Context, method: str, path: str, body: Any = None) -> Any:
    import httpx

    try:
        response = httpx.request(
            method,
            f"{ctx.obj['url']}/dev-chain{path}",
            json=body,
            headers={"X-Dev-Chain-Token": ctx.obj["token"]},
            timeout=60,
        )
    except httpx.HTTPError as e:
        raise click.ClickException(f"cannot reach the server at {ctx.obj['url']}: {e}") from None
    try:
        data = response.json()
    except ValueError:
        data = {"error": response.text}
    if response.status_code >= 400:
        detail = data.get("details") or data.get("error")
        raise click.ClickException(f"{response.status_code}: {detail}")
    return data


@dev_chain.command("info")
@click.pass_context
def dev_chain_info(ctx: click.Context) -> None:
    """Chain id, test USDC address, receiving address, head block."""
    click.echo(json.dumps(_call(ctx, "GET", "/info"), indent=2))


@dev_chain.command("fund")
@click.argument("wallet")
@click.argument("amount")
@click.pass_context
def dev_chain_fund(ctx: click.Context, wallet: str, amount: str) -> None:
    """Mint AMOUNT test USDC (e.g. 25 or 12.5) to WALLET, plus ETH for gas."""
    data = _call(ctx, "POST", "/fund", {"wallet": wallet, "amount": amount})
    units = data["account"]["usdc_units"]
    click.echo(
        f"minted {amount} USDC to {wallet} (tx {data['tx_hash']}); balance {units / 1e6:.6f}"
    )


@dev_chain.command("pay")
@click.argument("payment_id")
@click.option(
    "--private-key",
    default=None,
    envvar="BACKLINE_DEV_PAYER_KEY",
    help="Key of the declared paying wallet (not needed for dev accounts).",
)
@click.pass_context
def dev_chain_pay(ctx: click.Context, payment_id: str, private_key: str | None) -> None:
    """Pay PAYMENT_ID by a plain USDC transfer from its declared wallet."""
    data = _call(ctx, "POST", "/pay", {"payment_id": payment_id, "private_key": private_key})
    minted = f" (minted {data['minted_units'] / 1e6:.6f} first)" if data["minted_units"] else ""
    click.echo(
        f"paid {data['amount_units'] / 1e6:.6f} USDC from {data['from']} to {data['to']} "
        f"in tx {data['tx_hash']} (block {data['block_number']}){minted}"
    )


@dev_chain.command("mine")
@click.option("--blocks", default=1, show_default=True, type=click.IntRange(1, 1000))
@click.pass_context
def dev_chain_mine(ctx: click.Context, blocks: int) -> None:
    """Mine empty blocks (adds confirmations)."""
    data = _call(ctx, "POST", "/mine", {"blocks": blocks})
    click.echo(f"head is block {data['block_number']}")


def register(main: click.Group) -> None:
    main.add_command(catalog)
    main.add_command(licenses)
    main.add_command(dev_chain)

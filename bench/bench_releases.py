"""Release submission benchmark (issue 6), end to end over HTTP on PostgreSQL.

Ours: ``POST /api/mcp/submit`` on a real ``backline serve`` (one uvicorn worker by
default): bearer authentication, the per-account submit rate limit, validation with the
uploaded files' facts, ISRC/UPC assignment and claims, pricing from the AI-detection
results, and ONE ``save_all`` of the release, the credit ledger (release debit +
token-offset debit), the delivery job, the conversation index and the identifier claims.
Every account has its own cover and two tracks (one human, one AI-detected), so each
submission costs 1 + 2 + 1 credits; the run checks that exactly that was charged.

The background consumers (delivery worker, projections, auto-reload manager) are off
while timing and catch up afterwards, as they would run as their own processes in a
scaled deployment; ``--with-worker`` keeps them in the server (on this 2-core machine
they then compete with the requests for CPU).

Baseline (same run, same client, same concurrency, same number of uvicorn workers): a
bare Litestar app whose handler inserts one row into PostgreSQL (psycopg async pool).
The two are measured alternately for ``--rounds`` rounds (fresh submissions each round)
and the medians compared, so load from other processes hits both alike.

Reports submissions/s and p50/p99 latency for both. Target: >= 25 % of the baseline's
throughput.

Run: ``.venv/bin/python -m bench.bench_releases [--submissions N] [--rounds R]
[--concurrency C] [--workers W] [--with-worker]``.
"""

from __future__ import annotations

import argparse
import base64
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.common import fresh_pg, percentiles, rate_line, ratio_line, settings_env

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.25


# -- the baseline app ----------------------------------------------------------------------


def baseline_app() -> Any:
    """A bare Litestar handler doing one PostgreSQL insert (uvicorn factory)."""
    from litestar import Litestar, post
    from psycopg_pool import AsyncConnectionPool

    url = os.environ["BENCH_BASELINE_PG"]
    pool = AsyncConnectionPool(url, min_size=4, max_size=8, open=False)

    async def startup() -> None:
        await pool.open()
        async with pool.connection() as conn:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS bench_submissions "
                "(id BIGSERIAL PRIMARY KEY, body JSONB NOT NULL, created_at TIMESTAMPTZ)"
            )

    @post("/submit", status_code=200)
    async def submit(data: dict[str, Any]) -> dict[str, Any]:
        async with pool.connection() as conn:
            cur = await conn.execute(
                "INSERT INTO bench_submissions (body, created_at) VALUES (%s, now()) RETURNING id",
                (httpx_json(data),),
            )
            row = await cur.fetchone()
        return {"success": True, "id": row[0] if row else None}

    return Litestar(route_handlers=[submit], on_startup=[startup], debug=False)


def httpx_json(data: Any) -> str:
    import msgspec

    return msgspec.json.encode(data).decode()


# -- processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"not healthy:\n{log.read_text(errors='replace')[-3000:]}")


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        cmd, env=env, cwd=str(ROOT), stdout=log.open("wb"), stderr=subprocess.STDOUT
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# -- load ------------------------------------------------------------------------------------


def run_load(
    url: str, bodies: list[tuple[dict[str, str], dict[str, Any]]], concurrency: int
) -> tuple[float, list[float], int]:
    """POST every body; return (seconds, latencies, failures)."""
    latencies: list[float] = []
    failures = 0
    lock = threading.Lock()
    index = iter(range(len(bodies)))
    local = threading.local()

    def client() -> httpx.Client:
        c = getattr(local, "client", None)
        if c is None:
            c = local.client = httpx.Client(timeout=60)
        return c

    def worker() -> None:
        nonlocal failures
        while True:
            with lock:
                i = next(index, None)
            if i is None:
                return
            headers, body = bodies[i]
            t0 = time.perf_counter()
            r = client().post(url, json=body, headers=headers)
            dt = time.perf_counter() - t0
            with lock:
                latencies.append(dt)
                if r.status_code != 200:
                    failures += 1
                    if failures <= 3:
                        print(f"    ! {r.status_code} {r.text[:300]}")

    t0 = time.perf_counter()
    with ThreadPoolExecutor(concurrency) as pool:
        for f in [pool.submit(worker) for _ in range(concurrency)]:
            f.result()
    return time.perf_counter() - t0, latencies, failures


def report(label: str, n: int, secs: float, latencies: list[float], failures: int) -> float:
    rate = rate_line(label, n, secs, "req/s")
    p50, p99 = percentiles(latencies)
    print(f"  {'':<58} p50 = {p50 * 1000:7.1f} ms, p99 = {p99 * 1000:7.1f} ms, failed {failures}")
    return rate


# -- setup -----------------------------------------------------------------------------------


def setup_accounts(
    env: dict[str, str], public_url: str, accounts: int, per_account: int
) -> list[tuple[dict[str, str], dict[str, Any]]]:
    """Accounts with credits, uploads (detected) and a token; one body per submission."""
    from backline.infra.container import Container
    from backline.infra.settings import Settings
    from tests.uploads_helpers import image_bytes, wav_bytes, with_riff_info

    c = Container.build(Settings.from_env(env))
    cover = base64.b64encode(image_bytes(3000, 3000)).decode()
    human = base64.b64encode(wav_bytes(1.0, seed=1)).decode()
    ai = base64.b64encode(with_riff_info(wav_bytes(1.0, seed=2), {"ISFT": "Suno"})).decode()
    date = (datetime.now(UTC).date() + timedelta(days=30)).isoformat()
    bodies: list[tuple[dict[str, str], dict[str, Any]]] = []
    try:
        for n in range(accounts):
            email = f"bench{n}@example.com"
            account = c.accounts.register(email, "correct horse battery staple", "Bench")
            aid = account.account_id
            c.credits.grant(aid, per_account * 4 + 10, f"bench:{n}")
            cov = c.uploads.upload_inline(aid, "coverArt", cover, "cover.png", "image/png")
            hum = c.uploads.upload_inline(aid, "audio", human, "human.wav", "audio/wav")
            gen = c.uploads.upload_inline(aid, "audio", ai, "ai.wav", "audio/wav")
            for f in (hum, gen):
                c.uploads.detect(aid, f.file_url)
            token = c.oauth.issue_direct(
                aid,
                client_id="bench",
                scope="once:mcp",
                audience=f"{public_url}/api/mcp",
                via="cli",
            ).access_token
            headers = {"Authorization": f"Bearer {token}"}
            for k in range(per_account):
                bodies.append(
                    (
                        headers,
                        {
                            "release": {
                                "title": f"Bench {n}-{k}",
                                "primary_artist_name": "Bench Artist",
                                "genre": "Electronic",
                                "release_date": date,
                                "cover_art_file_url": cov.file_url,
                            },
                            "tracks": [
                                {
                                    "title": "Human",
                                    "audio_file_url": hum.file_url,
                                    "explicit_flag": False,
                                    "writers": [{"name": "A Writer"}],
                                },
                                {
                                    "title": "Machine",
                                    "audio_file_url": gen.file_url,
                                    "explicit_flag": False,
                                    "writers": [{"name": "A Writer"}],
                                },
                            ],
                            "tokenOffset": True,
                            "conversationId": f"bench-{n}-{k}",
                        },
                    )
                )
    finally:
        c.close()
    # Interleave accounts so concurrent requests mostly touch different ledgers.
    return [bodies[i * per_account + k] for k in range(per_account) for i in range(accounts)]


def check_billing(env: dict[str, str], expected: int) -> None:
    """Every submission is one release charged 4 credits (read model after catch-up)."""
    from backline.infra.container import Container
    from backline.infra.settings import Settings

    c = Container.build(Settings.from_env(env))
    try:
        c.runner.catch_up()
        with c.read.read() as tx:
            found = tx.fetchone("SELECT count(*), sum(credits_charged) FROM releases")
            used = tx.fetchone("SELECT sum(used_total) FROM credit_balances")
        assert found is not None
        assert used is not None
        count, charged = int(found[0]), int(found[1] or 0)
        print(
            f"  check: {count} releases, {charged} credits charged, ledgers used "
            f"{int(used[0] or 0)} (expected {expected} and {expected * 4})"
        )
    finally:
        c.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=40)
    parser.add_argument("--submissions", type=int, default=600, help="per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, both servers")
    parser.add_argument(
        "--with-worker",
        action="store_true",
        help="run the delivery worker, projections and auto-reload in the server while timing",
    )
    args = parser.parse_args(argv)
    per_account = max(1, args.submissions // args.accounts)
    n = per_account * args.accounts
    print(
        f"\nRelease submission over HTTP on PostgreSQL ({args.rounds} rounds of {n} submissions, "
        f"c={args.concurrency}, {args.workers} uvicorn worker(s) each)"
    )
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        public = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            **settings_env(url, data),
            "BACKLINE_PUBLIC_URL": public,
            "BACKLINE_RATE_LIMIT_SUBMIT": "1000000 per 60 seconds",
            "BACKLINE_RATE_LIMIT_MCP": "1000000 per 60 seconds",
            "BACKLINE_STORE_LATENCY": "1",
            # Background consumers catch up after the timed window unless --with-worker.
            "BACKLINE_DELIVERY_WORKER_IN_PROCESS": "1" if args.with_worker else "0",
            "BACKLINE_PROJECTIONS_IN_PROCESS": "1" if args.with_worker else "0",
            "BACKLINE_AUTORELOAD_IN_PROCESS": "1" if args.with_worker else "0",
        }
        print("  setting up accounts, uploads and tokens ...")
        bodies = setup_accounts(env, public, args.accounts, per_account * args.rounds)
        base_port = free_port()
        base_url = f"http://127.0.0.1:{base_port}"
        baseline = start(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "bench.bench_releases:baseline_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(base_port),
                "--log-level",
                "warning",
                "--no-access-log",
                "--workers",
                str(args.workers),
            ],
            {**os.environ, "BENCH_BASELINE_PG": url},
            Path(tmp) / "baseline.log",
        )
        log = Path(tmp) / "server.log"
        server = start(
            [
                sys.executable,
                "-m",
                "backline.infra.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(args.workers),
            ],
            env,
            log,
        )
        base_rates: list[float] = []
        our_rates: list[float] = []
        try:
            wait_healthy(f"{base_url}/", baseline, Path(tmp) / "baseline.log")
            wait_healthy(f"{public}/health", server, log)
            run_load(f"{base_url}/submit", bodies[:50], args.concurrency)  # warm-up
            for _ in range(20):
                httpx.get(f"{public}/api/mcp/releases?limit=1", headers=bodies[0][0], timeout=30)
            for r in range(args.rounds):
                chunk = bodies[r * n : (r + 1) * n]
                print(f"  round {r + 1}:")
                secs, lat, failed = run_load(f"{base_url}/submit", chunk, args.concurrency)
                base_rates.append(
                    report("baseline: bare Litestar + 1 Postgres insert", n, secs, lat, failed)
                )
                secs, lat, failed = run_load(f"{public}/api/mcp/submit", chunk, args.concurrency)
                our_rates.append(
                    report(
                        "POST /api/mcp/submit (validate, assign, bill, 1 txn)", n, secs, lat, failed
                    )
                )
                ratio_line("  this round", our_rates[-1], base_rates[-1], TARGET)
        finally:
            stop(server)
            stop(baseline)
        ours = statistics.median(our_rates)
        base = statistics.median(base_rates)
        print(
            f"  median of {args.rounds} rounds: ours {ours:,.0f} req/s, baseline {base:,.0f} req/s"
        )
        ratio_line("submissions vs bare insert (medians)", ours, base, TARGET)
        check_billing(env, n * args.rounds)


if __name__ == "__main__":
    main(sys.argv[1:])

"""Races on the real stores: one-shot codes and parallel refreshes (SQLite and Postgres)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any
from uuid import uuid4

from backline.application.oauth import InvalidGrant, TokenSet
from backline.infra.container import Container

CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def race(n: int, fn: Callable[[], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    results: list[Any] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            out: Any = fn()
        except Exception as e:  # collected and asserted on below
            out = e
        with lock:
            results.append(out)

    threads = [threading.Thread(target=run) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def test_code_redeemed_once_under_a_race(container: Container) -> None:
    oauth = container.oauth
    client = oauth.register_client(["http://127.0.0.1:1/cb"])
    code = oauth.issue_code(
        client_id=client.client_id,
        account_id=uuid4(),
        redirect_uri="",
        scope="once:mcp",
        code_challenge=CHALLENGE,
        audience="http://127.0.0.1:8000/api/mcp",
    )
    results = race(4, lambda: oauth.exchange_code(code, client.client_id))
    winners = [r for r in results if isinstance(r, TokenSet)]
    assert len(winners) == 1
    assert all(isinstance(r, InvalidGrant) for r in results if r not in winners)
    # Used more than once: the tokens it produced are revoked (RFC 6749 §4.1.2).
    assert oauth.authenticate_access(winners[0].access_token) is None


def test_parallel_refreshes_both_succeed(container: Container) -> None:
    oauth = container.oauth
    client = oauth.register_client(["http://127.0.0.1:1/cb"])
    code = oauth.issue_code(
        client_id=client.client_id,
        account_id=uuid4(),
        redirect_uri="",
        scope="once:mcp",
        code_challenge=CHALLENGE,
        audience="http://127.0.0.1:8000/api/mcp",
    )
    tokens = oauth.exchange_code(code, client.client_id)
    results = race(3, lambda: oauth.refresh(tokens.refresh_token, client.client_id))
    assert all(isinstance(r, TokenSet) for r in results), results
    assert len({r.refresh_token for r in results}) == 3
    for r in results:
        assert oauth.authenticate_access(r.access_token) is not None

"""Event store and projection benchmarks (issue 2).

(a) command cycle (load, change, save) on PostgreSQL vs raw psycopg inserts of
    equivalent rows, one transaction each, in the same run;
(b) projection rebuild (events/s) vs a raw SELECT + decode of the same notifications;
(c) msgspec mapper vs the library's default JSON mapper (why we use the former).

Run: ``.venv/bin/python -m bench.bench_store [--accounts N] [--commands N]``.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path
from typing import Any

import psycopg
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, UUIDAsHex

from backline.adapters.msgspec_mapper import MsgspecMapper
from backline.domain.account import Account, EmailIndex
from backline.infra.container import Container
from backline.infra.settings import Settings
from bench.common import fresh_pg, rate_line, ratio_line, settings_env, timed


def seed(container: Container, n: int, chunk: int = 1000) -> None:
    for start in range(0, n, chunk):
        batch: list[Any] = []
        for i in range(start, min(n, start + chunk)):
            email = f"user{i}@example.com"
            account = Account(
                email=email,
                password_hash="$argon2id$v=19$m=65536,t=3,p=4$bench",
                first_name=f"First{i}",
                last_name="",
                is_admin=False,
                provenance="BENCH",
            )
            account.change_profile(last_name=f"Last{i}")
            batch += [account, EmailIndex(email=email, account_id=account.id)]
        container.store.save_all(*batch)


def bench_command_cycle(container: Container, url: str, commands: int) -> None:
    print(f"\n(a) command cycle on PostgreSQL, {commands} commands, one transaction each")
    ids = [uuid.UUID(str(r["id"])) for r in _account_ids(container, commands)]

    def run_commands() -> None:
        for i, account_id in enumerate(ids):
            account = container.accounts.get(account_id)
            account.change_profile(first_name=f"Renamed{i}")
            container.store.save_all(account)

    secs, _ = timed(run_commands)
    ours = rate_line("load + change + save (AccountService path)", len(ids), secs, "cmd/s")

    with psycopg.connect(url, autocommit=False) as conn:
        conn.execute(
            "CREATE TABLE raw_events (originator_id uuid, originator_version int, "
            "topic text, state bytea, notification_id bigserial, "
            "PRIMARY KEY (originator_id, originator_version))"
        )
        conn.commit()
        state = b'{"timestamp":"2026-11-21T00:00:00Z","first_name":"Renamed","last_name":"x"}'

        def raw_inserts() -> None:
            for i, account_id in enumerate(ids):
                conn.execute(
                    "INSERT INTO raw_events (originator_id, originator_version, topic, state) "
                    "VALUES (%s, %s, %s, %s)",
                    (account_id, 100 + i, "backline.Account.ProfileChanged", state),
                )
                conn.commit()

        secs, _ = timed(raw_inserts)
    base = rate_line("baseline: raw psycopg INSERT + COMMIT of one event row", len(ids), secs)
    ratio_line("command cycle / raw insert", ours, base)


def _account_ids(container: Container, n: int) -> list[dict[str, Any]]:
    container.runner.catch_up()
    return container.profiles.list(limit=n)


def bench_rebuild(container: Container, label: str) -> None:
    projection = container.runner.projections["profiles"]
    topics = projection.topics
    recorder = container.store.recorder
    mapper = container.store.mapper
    head = container.store.max_position()

    def raw_read(decode: Any) -> int:
        count, start = 0, 0
        while True:
            notes = recorder.select_notifications(
                start=start, limit=5000, stop=head, topics=topics, inclusive_of_start=False
            )
            if not notes:
                return count
            for n in notes:
                decode(n)
            count += len(notes)
            start = notes[-1].id

    print(f"\n(b) projection rebuild on {label}, {head:,} events in the log")
    secs, count = timed(lambda: raw_read(mapper.to_domain_event))
    base = rate_line("baseline: raw SELECT + decode to domain events", count, secs, "events/s")
    secs, count = timed(lambda: raw_read(mapper.to_event_view))  # type: ignore[attr-defined]
    views = rate_line("reference: raw SELECT + decode to read-only views", count, secs, "events/s")
    secs, count = timed(lambda: container.runner.rebuild("profiles"))
    ours = rate_line(
        "projections rebuild profiles (drop, replay, write rows)", count, secs, "events/s"
    )
    ratio_line("rebuild / raw read (decode to domain events)", ours, base, target=0.5)
    ratio_line("rebuild / raw read (decode to views, as the runner)", ours, views)


def bench_mapper(container: Container, n: int = 20000) -> None:
    print(f"\n(c) event mapper, {n:,} events encode+decode")
    notes = container.store.recorder.select_notifications(start=1, limit=n)
    events = [container.store.mapper.to_domain_event(x) for x in notes]
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    default: Mapper[Any] = Mapper(transcoder=transcoder)
    fast = MsgspecMapper()
    for name, mapper in (("library default JSON mapper", default), ("msgspec mapper", fast)):
        stored = [mapper.to_stored_event(e) for e in events]
        enc_secs, _ = timed(lambda m=mapper: [m.to_stored_event(e) for e in events])
        dec_secs, _ = timed(lambda m=mapper, s=stored: [m.to_domain_event(x) for x in s])
        rate_line(f"{name}: encode", len(events), enc_secs, "events/s")
        rate_line(f"{name}: decode", len(events), dec_secs, "events/s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000, help="accounts to seed")
    parser.add_argument("--commands", type=int, default=2_000)
    args = parser.parse_args(argv)
    print("== bench_store: event store and projections ==")
    with fresh_pg() as url, tempfile.TemporaryDirectory() as tmp:
        container = Container.build(Settings.from_env(settings_env(url, Path(tmp))))
        try:
            secs, _ = timed(lambda: seed(container, args.accounts))
            rate_line(
                "seed (1,000 accounts per transaction, 3 events each)",
                args.accounts * 3,
                secs,
                "events/s",
            )
            bench_command_cycle(container, url, args.commands)
            bench_rebuild(container, "PostgreSQL")
            bench_mapper(container)
        finally:
            container.close()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        container = Container.build(Settings.from_env(settings_env(url, Path(tmp))))
        try:
            seed(container, args.accounts)
            bench_rebuild(container, "SQLite")
        finally:
            container.close()


if __name__ == "__main__":
    main()

"""The msgspec mapper round-trips every event type and reads like the default mapper."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import msgspec
from eventsourcing.persistence import DatetimeAsISO, JSONTranscoder, Mapper, StoredEvent, UUIDAsHex

from backline.adapters.msgspec_mapper import MsgspecMapper
from backline.domain.account import Account, EmailIndex, LockoutPolicy


def sample_events() -> list[object]:
    account = Account(
        email="ada@example.com",
        password_hash="h",
        first_name="Ada",
        last_name="L",
        is_admin=True,
        provenance="WEB",
    )
    now = datetime(2026, 1, 1, tzinfo=UTC)
    account.record_failed_login(now, LockoutPolicy(max_failures=1, lock_for=timedelta(minutes=1)))
    account.change_profile(first_name="Augusta")
    account.change_email("augusta@example.com")
    index = EmailIndex(email="ada@example.com", account_id=account.id)
    index.release()
    return [*account.collect_events(), *index.collect_events()]


def test_round_trip_preserves_types_and_values() -> None:
    mapper = MsgspecMapper()
    for event in sample_events():
        stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
        assert stored.topic == type(event).TOPIC  # type: ignore[attr-defined]
        back = mapper.to_domain_event(stored)
        assert type(back) is type(event)
        assert vars(back) == vars(event)


def test_state_is_plain_json_readable_without_python() -> None:
    mapper = MsgspecMapper()
    event = sample_events()[0]
    stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = msgspec.json.decode(stored.state)
    assert state["email"] == "ada@example.com"
    assert isinstance(state["timestamp"], str)
    assert "_type_" not in stored.state.decode()


def test_locked_until_datetime_and_uuid_fields_come_back_typed() -> None:
    mapper = MsgspecMapper()
    events = sample_events()
    failed = next(e for e in events if type(e).__name__ == "LoginFailed")
    back = mapper.to_domain_event(mapper.to_stored_event(failed))  # type: ignore[arg-type]
    assert isinstance(back.locked_until, datetime)
    claimed = next(e for e in events if type(e).__name__ == "Claimed")
    back = mapper.to_domain_event(mapper.to_stored_event(claimed))  # type: ignore[arg-type]
    assert back.account_id == claimed.account_id  # type: ignore[attr-defined]


def test_corrupt_state_raises_mapper_error() -> None:
    import pytest
    from eventsourcing.persistence import MapperDeserialisationError

    mapper = MsgspecMapper()
    bad = StoredEvent(uuid4(), 1, "backline.Account.ProfileChanged", b'{"first_name": 3}')
    with pytest.raises(MapperDeserialisationError):
        mapper.to_domain_event(bad)


def test_default_mapper_and_msgspec_mapper_agree_on_event_state() -> None:
    transcoder = JSONTranscoder()
    transcoder.register(UUIDAsHex())
    transcoder.register(DatetimeAsISO())
    default: Mapper = Mapper(transcoder=transcoder)  # type: ignore[type-arg]
    fast = MsgspecMapper()
    for event in sample_events():
        a = default.to_domain_event(default.to_stored_event(event))  # type: ignore[arg-type]
        b = fast.to_domain_event(fast.to_stored_event(event))  # type: ignore[arg-type]
        assert vars(a) == vars(b)


def test_event_view_carries_the_same_values_as_the_domain_event() -> None:
    mapper = MsgspecMapper()
    for event in sample_events():
        stored = mapper.to_stored_event(event)  # type: ignore[arg-type]
        full = mapper.to_domain_event(stored)
        view = mapper.to_event_view(stored)
        assert {k: getattr(view, k) for k in vars(full)} == vars(full)
        assert type(view).TOPIC == type(event).TOPIC  # type: ignore[attr-defined]


def test_event_view_of_corrupt_state_raises_mapper_error() -> None:
    import pytest
    from eventsourcing.persistence import MapperDeserialisationError

    mapper = MsgspecMapper()
    bad = StoredEvent(uuid4(), 1, "backline.Account.ProfileChanged", b'{"first_name": 3}')
    with pytest.raises(MapperDeserialisationError):
        mapper.to_event_view(bad)

"""Stateful property test of UploadSession, and Range-header parsing."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import uuid4

import hypothesis.strategies as st
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from backline.api.uploads import parse_range
from backline.domain.errors import DomainError
from backline.domain.uploads import UploadSession


class SessionMachine(RuleBasedStateMachine):
    """Chunks arrive in any order, re-sent, sometimes with other bytes; then complete."""

    def __init__(self) -> None:
        super().__init__()
        self.size = 0
        self.session: UploadSession | None = None
        self.model: dict[int, str] = {}
        self.completed = False
        self.events: list[object] = []

    @rule(size=st.integers(1, 50), chunk=st.integers(1, 12))
    @precondition(lambda self: self.session is None)
    def prepare(self, size: int, chunk: int) -> None:
        self.size = size
        self.session = UploadSession(
            owner_id=uuid4(),
            kind="audio",
            file_name="a.wav",
            file_size=size,
            file_type="",
            chunk_bytes=chunk,
            token_hash="h",
            expires_at=datetime.now(UTC),
            provenance="MCP",
            id=uuid4(),  # type: ignore[call-arg]
        )

    @rule(index=st.integers(-2, 60), variant=st.sampled_from(["a", "b"]), right_size=st.booleans())
    @precondition(lambda self: self.session is not None)
    def send(self, index: int, variant: str, right_size: bool) -> None:
        s = self.session
        assert s is not None
        in_range = 0 <= index < s.total_chunks
        size = s.expected_size(index) if in_range and right_size else (s.chunk_bytes + 1)
        digest = f"{variant}{index}"
        new: bool | None = None
        err: DomainError | None = None
        try:
            new = s.receive_chunk(index, size, digest)
        except DomainError as e:
            err = e
        if self.completed:
            # The index is checked first, then the session's state.
            assert err is not None
            assert err.code == ("session_completed" if in_range else "invalid_chunk_index")
        elif not (in_range and right_size):
            assert err is not None
            assert err.code in ("invalid_chunk_index", "invalid_chunk_size")
        elif index in self.model and self.model[index] != digest:
            assert err is not None
            assert err.code == "chunk_conflict"
        else:
            assert err is None
            assert new == (index not in self.model)
            self.model[index] = digest

    @rule()
    @precondition(lambda self: self.session is not None)
    def complete(self) -> None:
        s = self.session
        assert s is not None
        missing = [i for i in range(s.total_chunks) if i not in self.model]
        err: DomainError | None = None
        try:
            s.complete("/api/files/audio/x/a.wav", uuid4(), "d")
        except DomainError as e:
            err = e
        if self.completed:
            assert err is not None
            assert err.code == "session_completed"
        elif missing:
            assert err is not None
            assert err.code == "missing_chunks"
            assert err.details["missingChunks"] == missing[:100]
        else:
            assert err is None
            self.completed = True

    @invariant()
    def matches_model_and_replays_from_events(self) -> None:
        s = self.session
        if s is None:
            return
        assert {i: c.sha256 for i, c in s.chunks.items()} == self.model
        assert sum(s.expected_size(i) for i in range(s.total_chunks)) == self.size
        # The recorded events rebuild the same state.
        self.events.extend(s.collect_events())
        copy = None
        for event in self.events:
            copy = event.mutate(copy)  # type: ignore[attr-defined]
        assert copy is not None
        assert copy.chunks == s.chunks
        assert copy.state == s.state


TestSessionMachine = SessionMachine.TestCase
TestSessionMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)


@given(size=st.integers(1, 10_000), a=st.integers(0, 20_000), b=st.integers(0, 20_000))
def test_range_is_within_the_file(size: int, a: int, b: int) -> None:
    for header in (f"bytes={a}-{b}", f"bytes={a}-", f"bytes=-{b}"):
        got = parse_range(header, size)
        if isinstance(got, tuple):
            start, end = got
            assert 0 <= start <= end < size
        else:
            assert got in (None, "bad")
    assert parse_range("bytes=0-0,5-6", size) is None
    assert parse_range("items=0-1", size) is None

"""Browser sessions: random tokens in an HttpOnly cookie, only their hash at rest."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

import msgspec


class SessionStorage(Protocol):
    def set(self, namespace: str, key: str, value: bytes, expires_in: float | None) -> None: ...

    def get(self, namespace: str, key: str, renew_for: float | None = None) -> bytes | None: ...

    def delete(self, namespace: str, key: str) -> None: ...


class SessionData(msgspec.Struct):
    account_id: str
    position: int = 0  # highest event position this session wrote (read-your-writes)


@dataclass(frozen=True)
class Session:
    token: str
    account_id: UUID
    position: int


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SessionService:
    NAMESPACE = "session"

    def __init__(self, storage: SessionStorage, max_age: int = 14 * 24 * 3600) -> None:
        self.storage = storage
        self.max_age = max_age

    def create(self, account_id: UUID, position: int = 0) -> Session:
        token = secrets.token_urlsafe(32)
        data = SessionData(account_id=str(account_id), position=position)
        self.storage.set(self.NAMESPACE, _key(token), msgspec.json.encode(data), self.max_age)
        return Session(token=token, account_id=account_id, position=position)

    def load(self, token: str | None) -> Session | None:
        if not token or len(token) > 128:
            return None
        raw = self.storage.get(self.NAMESPACE, _key(token), renew_for=self.max_age)
        if raw is None:
            return None
        try:
            data = msgspec.json.decode(raw, type=SessionData)
            return Session(token=token, account_id=UUID(data.account_id), position=data.position)
        except (msgspec.DecodeError, ValueError):
            return None

    def note_position(self, session: Session, position: int) -> None:
        if position > session.position:
            data = SessionData(account_id=str(session.account_id), position=position)
            self.storage.set(
                self.NAMESPACE, _key(session.token), msgspec.json.encode(data), self.max_age
            )

    def destroy(self, token: str | None) -> None:
        if token:
            self.storage.delete(self.NAMESPACE, _key(token))

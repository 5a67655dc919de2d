"""Workspace API key use cases: create, rotate, revoke, authenticate (seed 002)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from uuid import UUID

from backline.application.store import EventStore, retrying
from backline.domain.api_keys import (
    KEY_PREFIX,
    ApiKey,
    ApiKeyHashIndex,
    clean_key_name,
    key_index_id,
)
from backline.domain.errors import NotFound
from backline.domain.oauth import secret_hash


@dataclass(frozen=True)
class IssuedKey:
    key_id: UUID
    name: str
    key: str  # the raw key: returned once, never stored
    hint: str
    position: int


def new_raw_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hint_of(raw: str) -> str:
    return f"{KEY_PREFIX}…{raw[-4:]}"


class ApiKeyService:
    def __init__(self, store: EventStore) -> None:
        self.store = store

    def create(self, account_id: UUID, name: str | None = None) -> IssuedKey:
        cleaned = clean_key_name(name)
        raw = new_raw_key()
        key_hash = secret_hash(raw)
        key = ApiKey(account_id=account_id, name=cleaned, key_hash=key_hash, hint=hint_of(raw))
        index = ApiKeyHashIndex(key_hash=key_hash, key_id=key.id)
        position = self.store.save_all(key, index)
        return IssuedKey(key.id, cleaned, raw, key.hint, position)

    def _owned(self, account_id: UUID, key_id: UUID) -> ApiKey:
        key = self.store.find(key_id, ApiKey)
        if key is None or key.account_id != account_id:
            raise NotFound("API key not found.", code="api_key_not_found")
        return key

    def rotate(self, account_id: UUID, key_id: UUID) -> IssuedKey:
        def attempt() -> IssuedKey:
            key = self._owned(account_id, key_id)
            raw = new_raw_key()
            key_hash = secret_hash(raw)
            key.rotate(key_hash, hint_of(raw))
            index = ApiKeyHashIndex(key_hash=key_hash, key_id=key.id)
            position = self.store.save_all(key, index)
            return IssuedKey(key.id, key.name, raw, key.hint, position)

        return retrying(attempt)

    def revoke(self, account_id: UUID, key_id: UUID) -> int:
        def attempt() -> int:
            key = self._owned(account_id, key_id)
            if not key.revoke():
                return 0
            return self.store.save_all(key)

        return retrying(attempt)

    def authenticate(self, raw: str | None) -> ApiKey | None:
        """The live key a raw ``isrc_live_…`` value answers to, or None."""
        if not raw or not raw.startswith(KEY_PREFIX) or len(raw) > 200:
            return None
        key_hash = secret_hash(raw)
        index = self.store.find(key_index_id(key_hash), ApiKeyHashIndex)
        if index is None:
            return None
        key = self.store.find(index.key_id, ApiKey)
        if key is None or not key.answers_to(key_hash):
            return None
        return key

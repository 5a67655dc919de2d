"""Workspace developer API keys (seed 002): ``isrc_live_…``, only a SHA-256 hash at rest.

A workspace is one account. An :class:`ApiKey` has a stable id across rotations; the
hash it currently answers to is claimed by an :class:`ApiKeyHashIndex` whose id is
``uuid5(namespace, sha256(key))``, saved in the same transaction, so looking a key up
by its hash needs no read model and a revoked or rotated key stops at once.
"""

from __future__ import annotations

from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

from backline.domain.errors import Conflict, ValidationFailed

KEY_PREFIX = "isrc_live_"
KEY_HASH_NAMESPACE = uuid5(NAMESPACE_URL, "https://backline.dev/ns/api-key-hash")
MAX_KEY_NAME = 100
MAX_KEYS_PER_ACCOUNT = 25


def key_index_id(key_hash: str) -> UUID:
    return uuid5(KEY_HASH_NAMESPACE, key_hash)


def clean_key_name(name: str | None) -> str:
    cleaned = (name or "").strip() or "API key"
    if len(cleaned) > MAX_KEY_NAME or any(ord(c) < 32 for c in cleaned):
        raise ValidationFailed(
            f"name must be at most {MAX_KEY_NAME} printable characters.",
            code="invalid_field",
            field="name",
        )
    return cleaned


class ApiKey(Aggregate):
    TOPIC = "backline.ApiKey"

    class Created(Aggregate.Created):
        TOPIC = "backline.ApiKey.Created"

    class Event(Aggregate.Event):
        pass

    class Issued(Created):
        TOPIC = "backline.ApiKey.Issued"
        account_id: UUID
        name: str
        key_hash: str
        hint: str

    @event(Issued)
    def __init__(self, account_id: UUID, name: str, key_hash: str, hint: str) -> None:
        self.account_id = account_id
        self.name = name
        self.key_hash = key_hash
        self.hint = hint
        self.revoked = False

    class Rotated(Event):
        TOPIC = "backline.ApiKey.Rotated"
        old_hash: str
        key_hash: str
        hint: str

    @event(Rotated)
    def _rotated(self, old_hash: str, key_hash: str, hint: str) -> None:
        self.key_hash = key_hash
        self.hint = hint

    def rotate(self, key_hash: str, hint: str) -> None:
        if self.revoked:
            raise Conflict("A revoked key cannot be rotated.", code="key_revoked")
        self._rotated(old_hash=self.key_hash, key_hash=key_hash, hint=hint)

    class Revoked(Event):
        TOPIC = "backline.ApiKey.Revoked"

    @event(Revoked)
    def _revoked(self) -> None:
        self.revoked = True

    def revoke(self) -> bool:
        if self.revoked:
            return False
        self._revoked()
        return True

    def answers_to(self, key_hash: str) -> bool:
        return not self.revoked and self.key_hash == key_hash


class ApiKeyHashIndex(Aggregate):
    """Claims one key hash for one key (ids collide if the same hash is claimed twice)."""

    TOPIC = "backline.ApiKeyHashIndex"

    class Created(Aggregate.Created):
        TOPIC = "backline.ApiKeyHashIndex.Created"

    class Claimed(Created):
        TOPIC = "backline.ApiKeyHashIndex.Claimed"
        key_hash: str
        key_id: UUID

    @staticmethod
    def create_id(key_hash: str) -> UUID:
        return key_index_id(key_hash)

    @event(Claimed)
    def __init__(self, key_hash: str, key_id: UUID) -> None:
        self.key_hash = key_hash
        self.key_id = key_id

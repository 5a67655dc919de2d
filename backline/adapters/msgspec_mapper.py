"""A msgspec-based event mapper: typed decoding straight into event state.

The library's default mapper serialises with ``json`` plus tagged transcodings
(``{"_type_": "uuid_hex", ...}``) and decodes in Python. This one derives a msgspec
Struct from each event class's annotations once, encodes with msgspec and decodes with
a typed, C-speed decoder (UUIDs, datetimes and nested structs come back typed, no tags).
``bench/bench_store.py`` measures both. Stored state is plain JSON: an auditor or a
Kafka consumer needs no Python to read it.
"""

from __future__ import annotations

import threading
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
)
from eventsourcing.utils import get_topic, resolve_topic

_SKIP_FIELDS = frozenset({"originator_id", "originator_version"})


class _NullTranscoder(Transcoder):
    """The mapper does its own encoding; this only satisfies the base constructor."""

    def encode(self, obj: Any) -> bytes:
        return msgspec.json.encode(obj)

    def decode(self, data: bytes) -> Any:
        return msgspec.json.decode(data)


def _view_namespace(cls: type[Any], fields: set[str]) -> dict[str, Any]:
    """Class attributes (constants, properties, helpers) our own event classes declare."""
    namespace: dict[str, Any] = {}
    for klass in reversed(cls.__mro__):
        if not klass.__module__.startswith("backline."):
            continue
        for name, value in vars(klass).items():
            if name.startswith("__") or name in fields or isinstance(value, type):
                continue
            namespace[name] = value
    return namespace


class _Codec:
    __slots__ = ("cls", "decoder", "fields", "version", "view_decoder")

    def __init__(self, cls: type[Any]) -> None:
        hints = typing.get_type_hints(cls)
        fields: list[tuple[str, Any, Any]] = []
        for name, tp in hints.items():
            if name in _SKIP_FIELDS or typing.get_origin(tp) is ClassVar or tp is ClassVar:
                continue
            fields.append((name, tp, msgspec.NODEFAULT))
        self.version: int = int(getattr(cls, "class_version", 1))
        if self.version > 1:
            fields.append(("class_version", int, 1))
        struct = msgspec.defstruct(
            f"_State_{cls.__qualname__.replace('.', '_')}",
            [(n, t) if d is msgspec.NODEFAULT else (n, t, d) for n, t, d in fields],
            forbid_unknown_fields=False,
        )
        self.fields = tuple(n for n, _, _ in fields)
        self.decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(struct)
        self.cls = cls
        # A read-only *view* for projections: the same fields decoded straight into a
        # struct (no event object, no state dict), plus the originator id and version,
        # and the event class's own constants (TOPIC, ...). Projections only read.
        view = msgspec.defstruct(
            f"{cls.__qualname__.replace('.', '_')}_View",
            [
                *[(n, t) if d is msgspec.NODEFAULT else (n, t, d) for n, t, d in fields],
                ("originator_id", Any, None),
                ("originator_version", int, 0),
            ],
            forbid_unknown_fields=False,
            namespace=_view_namespace(cls, {n for n, _, _ in fields}),
        )
        self.view_decoder: msgspec.json.Decoder[Any] = msgspec.json.Decoder(view)


def _enc_hook(obj: Any) -> Any:
    # Anything msgspec cannot encode natively is a programming error in an event.
    raise NotImplementedError(f"Cannot encode {type(obj).__name__} in an event")


class MsgspecMapper(Mapper[UUID]):
    """Drop-in :class:`eventsourcing.persistence.Mapper` using msgspec."""

    def __init__(self) -> None:
        super().__init__(transcoder=_NullTranscoder())
        self._encoder = msgspec.json.Encoder(enc_hook=_enc_hook)
        self._codecs: dict[str, _Codec] = {}
        self._lock = threading.Lock()

    def _codec(self, topic: str) -> _Codec:
        codec = self._codecs.get(topic)
        if codec is None:
            with self._lock:
                codec = self._codecs.get(topic)
                if codec is None:
                    codec = _Codec(resolve_topic(topic))
                    self._codecs[topic] = codec
        return codec

    def to_stored_event(self, domain_event: Any) -> StoredEvent:
        topic = get_topic(type(domain_event))
        state = dict(vars(domain_event))
        originator_id = state.pop("originator_id")
        originator_version = state.pop("originator_version")
        version = getattr(type(domain_event), "class_version", 1)
        if version > 1:
            state["class_version"] = version
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=self._encoder.encode(state),
        )

    def to_domain_event(self, stored_event: StoredEvent) -> Any:
        codec = self._codec(stored_event.topic)
        try:
            decoded = codec.decoder.decode(stored_event.state)
            state: dict[str, Any] = {name: getattr(decoded, name) for name in codec.fields}
            if codec.version > 1 and state.get("class_version", 1) < codec.version:
                state = self._upcast(codec, stored_event.state)
        except (msgspec.DecodeError, msgspec.ValidationError) as e:
            # An older class version may lack fields the current one needs.
            try:
                state = self._upcast(codec, stored_event.state)
            except Exception:
                msg = (
                    f"Failed to deserialise stored event {stored_event.topic} "
                    f"{stored_event.originator_id}@{stored_event.originator_version}: {e}"
                )
                raise MapperDeserialisationError(msg) from e
        state.pop("class_version", None)
        originator_id = stored_event.originator_id
        state["originator_id"] = (
            originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
        )
        state["originator_version"] = stored_event.originator_version
        domain_event = object.__new__(codec.cls)
        object.__setattr__(domain_event, "__dict__", state)
        return domain_event

    def to_event_view(self, stored_event: StoredEvent) -> Any:
        """Decode for read-only consumers (projections): a struct, not a domain event.

        Same fields and values as :meth:`to_domain_event` (tested), about twice as
        cheap; events of older class versions take the full path and are upcast.
        """
        codec = self._codec(stored_event.topic)
        if codec.version > 1:
            event = self.to_domain_event(stored_event)
            view = msgspec.convert(
                {n: getattr(event, n) for n in codec.fields}, codec.view_decoder.type
            )
        else:
            try:
                view = codec.view_decoder.decode(stored_event.state)
            except (msgspec.DecodeError, msgspec.ValidationError) as e:
                msg = (
                    f"Failed to deserialise stored event {stored_event.topic} "
                    f"{stored_event.originator_id}@{stored_event.originator_version}: {e}"
                )
                raise MapperDeserialisationError(msg) from e
        originator_id = stored_event.originator_id
        view.originator_id = (
            originator_id if isinstance(originator_id, UUID) else UUID(str(originator_id))
        )
        view.originator_version = stored_event.originator_version
        return view

    def _upcast(self, codec: _Codec, data: bytes) -> dict[str, Any]:
        raw: dict[str, Any] = msgspec.json.decode(data)
        from_version = int(raw.pop("class_version", 1))
        while from_version < codec.version:
            getattr(codec.cls, f"upcast_v{from_version}_v{from_version + 1}")(raw)
            from_version += 1
        raw["class_version"] = codec.version
        typed = msgspec.convert(raw, codec.decoder.type, strict=False)
        return {name: getattr(typed, name) for name in codec.fields}


def make_msgspec_mapper() -> Mapper[UUID]:
    return MsgspecMapper()


# Re-exported for type checkers of callers that only need the factory signature.
MapperFactory = Callable[[], Mapper[UUID]]
__all__ = ["MapperFactory", "MsgspecMapper", "datetime", "make_msgspec_mapper"]

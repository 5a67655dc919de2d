"""Event topics are a public contract: explicit, stable, unique, never module paths."""

from __future__ import annotations

import importlib
import pkgutil

from eventsourcing.domain import Aggregate, CanMutateAggregate

import backline.domain


def domain_aggregates() -> list[type[Aggregate]]:
    for info in pkgutil.iter_modules(backline.domain.__path__):
        importlib.import_module(f"backline.domain.{info.name}")
    found: list[type[Aggregate]] = []
    stack: list[type[Aggregate]] = list(Aggregate.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if cls.__module__.startswith("backline.domain"):
            found.append(cls)
    return found


def test_every_aggregate_and_event_has_an_explicit_backline_topic() -> None:
    aggregates = domain_aggregates()
    assert any(a.__name__ == "Account" for a in aggregates)
    owners: dict[str, type] = {}
    for aggregate in aggregates:
        # An aggregate with its own TOPIC makes eventsourcing refuse any event class of it
        # without an explicit TOPIC, at import time.
        own = aggregate.__dict__.get("TOPIC") or ""
        assert own.startswith("backline."), f"{aggregate.__qualname__} needs TOPIC"
        for name, value in vars(aggregate).items():
            if name == "Event" or not (
                isinstance(value, type) and issubclass(value, CanMutateAggregate)
            ):
                continue
            topic = getattr(value, "TOPIC", "") or ""
            assert topic.startswith("backline."), f"{value.__qualname__} needs TOPIC"
            # The library re-creates event classes as subclasses of the declared ones;
            # those share the declared topic. Unrelated classes must never share one.
            previous = owners.setdefault(topic, value)
            assert issubclass(value, previous) or issubclass(previous, value), (
                f"topic {topic} used by {previous.__qualname__} and {value.__qualname__}"
            )


def test_topics_resolve_to_the_event_classes() -> None:
    from eventsourcing.utils import get_topic, resolve_topic

    for aggregate in domain_aggregates():
        for name, value in vars(aggregate).items():
            if name == "Event" or not (
                isinstance(value, type) and issubclass(value, CanMutateAggregate)
            ):
                continue
            assert resolve_topic(get_topic(value)) is value

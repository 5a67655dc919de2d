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
    topics: dict[str, str] = {}
    for aggregate in aggregates:
        own = aggregate.__dict__.get("TOPIC") or ""
        assert own.startswith("backline."), f"{aggregate.__qualname__} needs TOPIC"
        for name, value in vars(aggregate).items():
            if not (isinstance(value, type) and issubclass(value, CanMutateAggregate)):
                continue
            if name == "Event":
                continue
            topic = value.__dict__.get("TOPIC") or ""
            assert topic.startswith("backline."), f"{value.__qualname__} needs TOPIC"
            assert topic not in topics or topics[topic] == value.__qualname__, topic
            topics[topic] = value.__qualname__

"""Chain adapters: Base over JSON-RPC and the in-process dev EVM (see ``evm.py``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class LazyChain:
    """Builds the chain adapter on first use (the dev EVM takes about a second to start).

    Attribute access is forwarded to the built adapter, so it satisfies the chain port.
    """

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._chain: Any = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._chain is not None

    def get(self) -> Any:
        if self._chain is None:
            with self._lock:
                if self._chain is None:
                    self._chain = self._factory()
        return self._chain

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

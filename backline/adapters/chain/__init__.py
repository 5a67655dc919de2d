"""Chain adapters: Base over JSON-RPC and the in-process dev EVM (see ``evm.py``)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from backline.application.chain import ChainError


class LazyChain:
    """Builds the chain adapter on first use (the dev EVM takes about a second to start).

    Attribute access is forwarded to the built adapter, so it satisfies the chain port.
    """

    RETRY_AFTER = 30.0  # seconds between attempts after a failed start

    def __init__(self, factory: Callable[[], Any]) -> None:
        self._factory = factory
        self._chain: Any = None
        self._lock = threading.Lock()
        self._failed_at = 0.0
        self._error = ""

    @property
    def built(self) -> bool:
        return self._chain is not None

    def get(self) -> Any:
        if self._chain is None:
            with self._lock:
                if self._chain is None:
                    if time.monotonic() - self._failed_at < self.RETRY_AFTER:
                        raise ChainError(f"chain unavailable: {self._error}")
                    try:
                        self._chain = self._factory()
                    except Exception as e:
                        self._failed_at, self._error = time.monotonic(), str(e)
                        raise ChainError(f"chain unavailable: {e}") from e
        return self._chain

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self.get(), name)

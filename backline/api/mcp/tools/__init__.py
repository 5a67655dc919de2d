"""Tool modules: importing this package registers every tool.

Add one module per area and list it here.
"""

from __future__ import annotations

import importlib

TOOL_MODULES: tuple[str, ...] = ("account", "credits", "uploads", "releases")


def load_all() -> None:
    for module in TOOL_MODULES:
        importlib.import_module(f"backline.api.mcp.tools.{module}")

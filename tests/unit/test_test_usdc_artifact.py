"""The shipped test-USDC artifact is exactly what the shipped Vyper source compiles to."""

from __future__ import annotations

import importlib.util
import json

import pytest

from backline.adapters.chain.evm import CONTRACTS


@pytest.mark.skipif(importlib.util.find_spec("vyper") is None, reason="vyper is not installed")
def test_artifact_matches_a_fresh_compile() -> None:
    from scripts.compile_test_usdc import compile_artifact

    shipped = json.loads((CONTRACTS / "TestUSDC.json").read_text())
    fresh = compile_artifact()
    assert shipped["compiler"] == fresh["compiler"]
    assert shipped["abi"] == fresh["abi"]
    assert shipped["bytecode"] == fresh["bytecode"]


def test_artifact_has_the_eip3009_surface() -> None:
    abi = json.loads((CONTRACTS / "TestUSDC.json").read_text())["abi"]
    names = {e.get("name") for e in abi}
    assert {
        "transferWithAuthorization",
        "authorizationState",
        "DOMAIN_SEPARATOR",
        "transfer",
        "balanceOf",
        "decimals",
        "mint",
        "Transfer",
    } <= names

"""Compile the dev chain's test USDC (Vyper) into the JSON artifact shipped in the repo.

Run: ``.venv/bin/python scripts/compile_test_usdc.py``. The artifact lets the server
start without the compiler; ``tests/unit/test_test_usdc_artifact.py`` recompiles and
compares whenever ``vyper`` is installed.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "backline/adapters/chain/contracts/TestUSDC.vy"
ARTIFACT = ROOT / "backline/adapters/chain/contracts/TestUSDC.json"


def compile_artifact() -> dict[str, object]:
    import vyper
    from vyper.compiler import compile_code

    out = compile_code(SOURCE.read_text(), output_formats=["abi", "bytecode"])
    return {
        "contract": "TestUSDC",
        "source": SOURCE.name,
        "compiler": f"vyper {vyper.__version__}",
        "abi": out["abi"],
        "bytecode": out["bytecode"],
    }


def main() -> int:
    ARTIFACT.write_text(json.dumps(compile_artifact(), indent=1) + "\n")
    print(f"wrote {ARTIFACT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

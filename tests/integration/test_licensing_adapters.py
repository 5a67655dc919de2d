"""The optional real adapters against local peers: an OpenAI-compatible chat endpoint for
AI search, and a JSON-RPC endpoint for the Base start-up checks."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from backline.adapters.ai_search_llm import LlmTranslator
from backline.adapters.chain.evm import BASE_USDC, connect_base
from backline.application.ai_search import AiSearch
from backline.application.catalog_search import parse_search_params
from backline.application.chain import ChainError

Handler = Callable[[str, dict[str, Any]], tuple[int, Any]]


@pytest.fixture
def peer() -> Iterator[Callable[[Handler], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(handle: Handler) -> str:
        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, answer = handle(self.path, {"body": body, "headers": dict(self.headers)})
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()


def test_llm_translator_output_is_sanitized(peer: Callable[[Handler], str]) -> None:
    seen: dict[str, Any] = {}

    def chat(path: str, req: dict[str, Any]) -> tuple[int, Any]:
        seen.update(path=path, auth=req["headers"].get("Authorization"), body=req["body"])
        answer = {
            "genre": "Rock",
            "bpm_min": 400,
            "bpm_max": 90,
            "instrumental": True,
            "key": "C Min",
            "description": "x" * 500,
            "sort": "desc",
            "page": 9,
            "license_type": "tv",
        }
        return 200, {"choices": [{"message": {"content": json.dumps(answer)}}]}

    url = peer(chat)
    translator = LlmTranslator(url + "/v1", "sk-test", "gpt-4o-mini")
    params, provider = AiSearch(translator).translate("loud rock", 12)
    assert provider == "openai-compatible"
    assert seen["path"] == "/v1/chat/completions"
    assert seen["auth"] == "Bearer sk-test"
    assert seen["body"]["messages"][1]["content"] == "loud rock"
    assert params["genre"] == "Rock"
    assert (params["bpm_min"], params["bpm_max"]) == (90, 300)  # clamped, ordered
    assert params["instrumental"] == "Yes"
    assert len(params["description"]) == 200
    assert "sort" not in params
    assert "page" not in params
    assert "license_type" not in params
    assert params["per_page"] == 12
    parse_search_params(params)


def test_llm_failure_falls_back_offline(peer: Callable[[Handler], str]) -> None:
    url = peer(lambda path, req: (500, {"error": "overloaded"}))
    params, provider = AiSearch(LlmTranslator(url, "k", "m")).translate("slow jazz piano", 5)
    assert provider == "local-vocabulary"
    assert params["genre"] == "Jazz"


def _rpc(chain_id: int, code: str) -> Handler:
    def handle(path: str, req: dict[str, Any]) -> tuple[int, Any]:
        body = req["body"]
        results = {"eth_chainId": hex(chain_id), "eth_getCode": code}
        return 200, {"jsonrpc": "2.0", "id": body["id"], "result": results.get(body["method"])}

    return handle


def test_base_adapter_refuses_another_chain(peer: Callable[[Handler], str]) -> None:
    url = peer(_rpc(84532, "0x6080"))
    with pytest.raises(ChainError, match="expected Base"):
        connect_base(url, receiving_address="0x" + "1" * 40, facilitator_key=None)


def test_base_adapter_refuses_a_missing_usdc_contract(peer: Callable[[Handler], str]) -> None:
    url = peer(_rpc(8453, "0x"))
    with pytest.raises(ChainError, match="no contract"):
        connect_base(
            url, receiving_address="0x" + "1" * 40, facilitator_key=None, token_address=BASE_USDC
        )


def test_a_chain_that_fails_to_start_is_not_retried_on_every_request() -> None:
    from backline.adapters.chain import LazyChain

    calls: list[int] = []

    def factory() -> Any:
        calls.append(1)
        raise ConnectionError("rpc down")

    chain = LazyChain(factory)
    for _ in range(3):
        with pytest.raises(ChainError, match="rpc down"):
            _ = chain.chain_id
    assert len(calls) == 1
    chain._failed_at -= LazyChain.RETRY_AFTER
    with pytest.raises(ChainError):
        chain.get()
    assert len(calls) == 2

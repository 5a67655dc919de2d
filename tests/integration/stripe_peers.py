"""Local Stripe peers for tests: localstripe (a real, stateful local Stripe) and a fake
Checkout Sessions API (localstripe has none), both on free ports."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest

from tests.conftest import free_port

# localstripe pickles its state to /tmp/localstripe.pickle on every change: a shared
# path. Run it with that disabled so parallel test runs never share state.
_LOCALSTRIPE = (
    "import sys, localstripe.resources as r; r.Store.dump_to_disk = lambda self: None; "
    "sys.argv = ['localstripe', '--port', sys.argv[1], '--from-scratch']; "
    "from localstripe.server import start; start()"
)


def localstripe_python() -> str:
    """This interpreter if it has localstripe (it is a dev dependency), else fail/skip."""
    probe = subprocess.run(
        [sys.executable, "-c", "import localstripe"], capture_output=True, timeout=60
    )
    if probe.returncode == 0:
        return sys.executable
    if os.environ.get("CI"):
        pytest.fail("localstripe is not installed (pip install -e '.[dev]')")
    pytest.skip("localstripe is not installed")
    raise AssertionError  # unreachable


@contextmanager
def run_localstripe() -> Iterator[str]:
    port = free_port()
    proc = subprocess.Popen(
        [localstripe_python(), "-c", _LOCALSTRIPE, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise RuntimeError("localstripe exited early")
            try:
                httpx.get(f"{base}/v1/customers", auth=("sk_test_local", ""), timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class FakeCheckoutSessions:
    """A fake of Stripe's Checkout Sessions API (``POST /v1/checkout/sessions``, ``GET
    /v1/checkout/sessions/{id}``) returning the documented object shape. It records each
    request's form parameters and headers so tests can check what the adapter sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.sessions: dict[str, dict[str, Any]] = {}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, body: dict[str, Any]) -> None:
                import json

                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", f"req_{uuid.uuid4().hex[:14]}")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(parse_qsl(self.rfile.read(length).decode(), keep_blank_values=True))
                fake.requests.append(
                    {"path": self.path, "form": form, "headers": dict(self.headers)}
                )
                if self.path != "/v1/checkout/sessions":
                    self._send(404, {"error": {"type": "invalid_request_error", "message": "nf"}})
                    return
                if not self.headers.get("Authorization", "").startswith("Bearer sk_"):
                    self._send(401, {"error": {"type": "invalid_request_error", "message": "key"}})
                    return
                self._send(200, fake.create(form))

            def do_GET(self) -> None:
                sid = self.path.rsplit("/", 1)[-1]
                if sid in fake.sessions:
                    self._send(200, fake.sessions[sid])
                else:
                    self._send(404, {"error": {"type": "invalid_request_error", "message": "nf"}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def create(self, form: dict[str, str]) -> dict[str, Any]:
        sid = f"cs_test_{uuid.uuid4().hex}"
        ui_mode = form.get("ui_mode", "hosted_page")
        amount = int(form["line_items[0][price_data][unit_amount]"]) * int(
            form.get("line_items[0][quantity]", "1")
        )
        metadata = {k[9:-1]: v for k, v in form.items() if k.startswith("metadata[")}
        session = {
            "id": sid,
            "object": "checkout.session",
            "amount_subtotal": amount,
            "amount_total": amount,
            "client_reference_id": form.get("client_reference_id"),
            "client_secret": f"{sid}_secret_{uuid.uuid4().hex[:24]}"
            if ui_mode == "embedded_page"
            else None,
            "currency": form["line_items[0][price_data][currency]"],
            "customer": form.get("customer"),
            "customer_creation": form.get("customer_creation"),
            "customer_email": form.get("customer_email"),
            "expires_at": int(time.time()) + 24 * 3600,
            "livemode": False,
            "metadata": metadata,
            "mode": form.get("mode"),
            "payment_intent": None,
            "payment_status": "unpaid",
            "return_url": form.get("return_url"),
            "status": "open",
            "success_url": form.get("success_url"),
            "cancel_url": form.get("cancel_url"),
            "ui_mode": ui_mode,
            "url": f"https://checkout.stripe.com/c/pay/{sid}" if ui_mode == "hosted_page" else None,
        }
        self.sessions[sid] = session
        return session

    def __enter__(self) -> FakeCheckoutSessions:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()

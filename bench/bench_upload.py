"""Chunked upload throughput and server memory: ``.venv/bin/python -m bench.bench_upload``.

A real ``backline serve`` (embedded SQLite, its own data dir) receives a generated WAV of
``--mb`` megabytes (default 1024) through the seed's chunked flow: ``prepare_local_file_upload``
over MCP, raw-byte chunks to ``/api/mcp/upload/chunk`` (keep-alive, ``--parallel``
connections), then ``/api/mcp/upload/complete`` (assemble, verify every chunk digest,
decode the whole file, publish). In the same run and on the same disk the same bytes are
written raw (8 MiB writes + fsync) as the baseline. The server's peak RSS is its kernel
high-water mark (``VmHWM``) read at the end, plus a sampled maximum during the run; the
peak of the decoder worker processes (validation runs there, see ``IsolatedInspector``) is
printed separately.

Targets (issue 4): chunk upload ≥ 50 % of the raw write rate; server peak RSS < 150 MB.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CHUNK = 8 * 1024 * 1024
PASSWORD = "bench password 12345"


def make_wav(path: Path, data_bytes: int) -> None:
    """A valid 44.1 kHz 16-bit stereo WAV of pseudo-random PCM (incompressible)."""
    data_bytes -= data_bytes % 4
    header = b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
    header += b"fmt " + struct.pack("<IHHIIHH", 16, 1, 2, 44100, 44100 * 4, 4, 16)
    header += b"data" + struct.pack("<I", data_bytes)
    block = bytearray(os.urandom(CHUNK))
    with open(path, "wb") as fh:
        fh.write(header)
        left = data_bytes
        i = 0
        while left > 0:
            block[:8] = i.to_bytes(8, "little")  # every block differs
            n = min(left, len(block))
            fh.write(block[:n])
            left -= n
            i += 1


def raw_write(src: Path, dst: Path) -> float:
    start = time.perf_counter()
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        while block := fin.read(CHUNK):
            fout.write(block)
        fout.flush()
        os.fsync(fout.fileno())
    return time.perf_counter() - start


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(data_dir: Path) -> tuple[subprocess.Popen[bytes], str, dict[str, str]]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "BACKLINE_DATA_DIR": str(data_dir),
        "BACKLINE_PUBLIC_URL": base,
        "BACKLINE_FAST_PASSWORD_HASHING": "1",
        "BACKLINE_LOG_FORMAT": "json",
        "BACKLINE_LOG_LEVEL": "WARNING",
    }
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "backline.infra.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=str(ROOT),
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return proc, base, env
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


def rss_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def token_for(env: dict[str, str]) -> str:
    run: dict[str, Any] = {"env": env, "cwd": str(ROOT), "check": True, "capture_output": True}
    cli = [sys.executable, "-m", "backline.infra.cli"]
    subprocess.run(
        [*cli, "accounts", "create", "bench@example.com"], input=PASSWORD + "\n", text=True, **run
    )
    out = subprocess.run([*cli, "tokens", "issue", "bench@example.com"], text=True, **run)
    return str(out.stdout.splitlines()[0])


def mcp_call(base: str, token: str, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(
        f"{base}/api/mcp",
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": name, "arguments": arguments},
        },
        headers={"Authorization": f"Bearer {token}", "MCP-Protocol-Version": "2025-06-18"},
        timeout=120,
    )
    r.raise_for_status()
    result: dict[str, Any] = r.json()["result"]["structuredContent"]
    return result


def prepare(base: str, token: str, size: int) -> dict[str, Any]:
    return mcp_call(
        base,
        token,
        "prepare_local_file_upload",
        {"fileName": "bench.wav", "fileSize": size, "type": "audio"},
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=1024, help="file size in MB (default 1 GB)")
    parser.add_argument("--parallel", type=int, default=2, help="concurrent chunk connections")
    args = parser.parse_args(argv)
    size_target = args.mb * 1024 * 1024
    print(f"== bench_upload: chunked upload of a {args.mb} MB WAV ==")
    with tempfile.TemporaryDirectory(dir=ROOT / "var" if (ROOT / "var").exists() else None) as tmp:
        work = Path(tmp)
        src = work / "source.wav"
        make_wav(src, size_target)
        size = src.stat().st_size
        data_dir = work / "data"
        proc, base, env = start(data_dir)
        try:
            token = token_for(env)
            idle = rss_kb(proc.pid, "VmRSS")
            # Baseline on the same disk, same run: raw write of the same bytes.
            raw_secs = raw_write(src, data_dir / "raw-baseline.bin")
            (data_dir / "raw-baseline.bin").unlink()
            raw_rate = size / raw_secs / 1e6
            prep = prepare(base, token, size)
            n = prep["total_chunks"]
            chunk = prep["recommended_chunk_bytes"]
            peak = {"rss": 0}
            stop = threading.Event()

            def sample() -> None:
                while not stop.is_set():
                    peak["rss"] = max(peak["rss"], rss_kb(proc.pid, "VmRSS"))
                    time.sleep(0.05)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            headers = {
                "x-mcp-upload-token": prep["upload_token"],
                "x-session-id": prep["session_id"],
                "x-upload-type": "audio",
                "content-type": "application/octet-stream",
            }
            local = threading.local()

            def send(i: int) -> None:
                client = getattr(local, "client", None)
                if client is None:
                    client = local.client = httpx.Client(timeout=120)
                with open(src, "rb") as fh:
                    fh.seek(i * chunk)
                    body = fh.read(chunk)
                r = client.post(
                    prep["chunk_endpoint"],
                    content=body,
                    headers={**headers, "x-chunk-index": str(i)},
                )
                r.raise_for_status()

            t0 = time.perf_counter()
            with concurrent.futures.ThreadPoolExecutor(args.parallel) as pool:
                list(pool.map(send, range(n)))
            chunk_secs = time.perf_counter() - t0
            t1 = time.perf_counter()
            done = httpx.post(
                prep["complete_endpoint"],
                json={"sessionId": prep["session_id"], "fileName": "bench.wav", "type": "audio"},
                headers={"x-mcp-upload-token": prep["upload_token"]},
                timeout=600,
            )
            done.raise_for_status()
            complete_secs = time.perf_counter() - t1
            stop.set()
            sampler.join()
            hwm = rss_kb(proc.pid, "VmHWM")
            # One 3000x3000 cover-art render (runs in a worker process too).
            t2 = time.perf_counter()
            art = mcp_call(base, token, "generate_cover_art", {"prompt": "Bench sunset poster"})
            art_secs = time.perf_counter() - t2
            assert art["fileUrl"], art
            hwm_after_art = rss_kb(proc.pid, "VmHWM")
            workers = [rss_kb(c, "VmHWM") for c in children(proc.pid)]
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        up_rate = size / chunk_secs / 1e6
        total_rate = size / (chunk_secs + complete_secs) / 1e6
        ratio = up_rate / raw_rate
        mb = hwm / 1024
        lines = [
            f"file: {size / 1e6:,.0f} MB in {n} chunks of {chunk // 2**20} MiB, "
            f"{args.parallel} connections",
            f"raw write + fsync, same bytes, same disk: {raw_rate:.1f} MB/s ({raw_secs:.2f}s)",
            f"chunk upload over HTTP (stream, hash, fsync, record): {up_rate:.1f} MB/s "
            f"({chunk_secs:.2f}s)",
            f"upload / raw write = {ratio:.1%} (target >= 50%: {_met(ratio >= 0.5)})",
            f"complete (assemble, verify digests, decode all, publish): {complete_secs:.2f}s; "
            f"end to end {total_rate:.1f} MB/s",
            f"server peak RSS (VmHWM) {mb:.1f} MB, sampled max {peak['rss'] / 1024:.1f} MB, "
            f"idle before upload {idle / 1024:.1f} MB (target < 150 MB: {_met(mb < 150)})",
            f"generate_cover_art 3000x3000: {art_secs:.2f}s; server VmHWM after it "
            f"{hwm_after_art / 1024:.1f} MB",
            "decoder worker process(es), separate from the server (isolated decoding): "
            + (", ".join(f"{w / 1024:.1f} MB" for w in workers) or "none")
            + " peak RSS",
        ]
        for line in lines:
            print("  " + line)


def _met(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


if __name__ == "__main__":
    main(sys.argv[1:])

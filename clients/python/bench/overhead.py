"""The cost of `Monitor.log()` on the serving thread, and what one Monitor sustains.

    infra/local/.venv/bin/python clients/python/bench/overhead.py [--calls 200000] [--stack]

Prints the median and 99th percentile of one `log()` call (timed in blocks of 100
calls, so the timer's own cost is spread), and the predictions per second one
Monitor delivers end to end: to a local HTTP receiver that accepts every batch, or,
with --stack, to the running local stack through its gateway (a token from
`stack.sh token`). Goal: median <= 5 us per call.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import uuid
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from modelwatch_client import Monitor  # noqa: E402


class Accept(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(202)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *_: Any) -> None:
        pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=200_000)
    ap.add_argument("--stack", action="store_true", help="deliver to the running local stack")
    args = ap.parse_args()
    calls = args.calls
    server = ThreadingHTTPServer(("127.0.0.1", 0), Accept)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, token, target = f"http://127.0.0.1:{server.server_address[1]}", "bench", "a local receiver"
    if args.stack:
        root = Path(__file__).resolve().parents[3]
        env = dict(line.split("=", 1) for line in (root / "infra/local/.run/stack.env").read_text().splitlines()
                   if "=" in line and not line.startswith("#"))
        tenant = f"bench-{uuid.uuid4().hex[:10]}"
        url, target = env["API_URL"], "the local stack (gateway, ingest, moto)"
        token = subprocess.run(["bash", str(root / "infra/local/stack.sh"), "token", tenant],
                               check=True, capture_output=True, text=True).stdout.strip()
    monitor = Monitor(url, token=token, tasks={"fraud": "binary_classification"},
                      max_buffered=calls + 1)
    block = 100
    per_call = []
    started = time.perf_counter()
    for n in range(calls // block):
        t0 = time.perf_counter_ns()
        for i in range(block):
            monitor.log("fraud", predicted=i & 1, score=0.75, latency_ms=12.5,
                        prediction_id=f"p{n}-{i}")
        per_call.append((time.perf_counter_ns() - t0) / block / 1000)
    logged = time.perf_counter() - started
    monitor.flush()
    delivered = time.perf_counter() - started
    monitor.close()
    server.shutdown()
    per_call.sort()
    print(f"log(): median {statistics.median(per_call):.2f} us, "
          f"p99 {per_call[int(len(per_call) * 0.99)]:.2f} us per call "
          f"({calls} calls, blocks of {block}; goal: median <= 5 us)")
    print(f"throughput: {calls / logged:,.0f} log() calls/s on one thread; "
          f"{monitor.stats.sent / delivered:,.0f} predictions/s delivered end to end "
          f"({monitor.stats.sent_batches} batches, {monitor.stats.dropped} dropped, "
          f"{monitor.stats.rejected + monitor.stats.failed} not delivered) to {target}")


if __name__ == "__main__":
    main()

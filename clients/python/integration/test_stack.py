"""The client against the local stack, over HTTP through its gateway (the test command
runs these once the stack is up; they fail, never skip, without it).

A proxy between the client and the gateway forwards the first batch but answers the
client 503: the client sends the same bytes again, the server answers that batch's
receipt, and the summary counts every prediction once.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import urllib.error
import urllib.request
import uuid
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest

from modelwatch_client import DeliveryError, Monitor

ROOT = Path(__file__).resolve().parents[3]


def stack_env() -> Dict[str, str]:
    """The running stack's endpoints (stack.env); fails when it is not up."""
    path = Path(os.environ.get("MODELWATCH_RUN_DIR", ROOT / "infra/local/.run")) / "stack.env"
    assert path.exists(), f"the local stack is not up ({path} is missing): bash infra/local/stack.sh up"
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line and not line.startswith("#"))
    return {key: value for key, value in pairs}


def token(tenant: str) -> str:
    out = subprocess.run(
        ["bash", str(ROOT / "infra/local/stack.sh"), "token", tenant],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


class FlakyProxy:
    """Forwards to the gateway; the first POST's answer is replaced by a 503."""

    def __init__(self, upstream: str) -> None:
        self.bodies: List[bytes] = []
        self.answers: List[int] = []
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                request = urllib.request.Request(
                    upstream + self.path, data=body, method="POST",
                    headers={k: v for k, v in self.headers.items() if k.lower() in ("authorization", "content-type")},
                )
                try:
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        status, payload = answer.status, answer.read()
                except urllib.error.HTTPError as err:
                    status, payload = err.code, err.read()
                proxy.bodies.append(body)
                proxy.answers.append(status)
                if len(proxy.bodies) == 1:
                    status, payload = 503, b'{"error": {"code": "unavailable"}}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()


@pytest.fixture
def env() -> Iterator[Dict[str, str]]:
    yield stack_env()


def test_batches_land_once_through_the_gateway_even_when_an_answer_is_lost(env: Dict[str, str]) -> None:
    tenant = f"py-{uuid.uuid4().hex[:12]}"
    proxy = FlakyProxy(env["API_URL"])
    minute = datetime.now(timezone.utc).replace(second=0, microsecond=0) - timedelta(minutes=2)
    with Monitor(proxy.url, token=token(tenant), tasks={"m-py": "binary_classification"},
                 batch_size=25, backoff_base=0.05) as monitor:
        for i in range(50):
            monitor.log("m-py", prediction_id=f"p{i}", predicted=i % 2, actual=1, score=0.7,
                        latency_ms=10.0 + i, timestamp=minute + timedelta(seconds=i))
    assert monitor.stats.sent == 50 and monitor.stats.retries == 1
    assert proxy.answers[:2] == [202, 202], "stored, then answered from its receipt"
    assert proxy.bodies[0] == proxy.bodies[1], "the same bytes"

    # Aggregate, then read the summary through the gateway: 50 predictions, not 75.
    event = json.loads((ROOT / "events/aggregate-scheduled.json").read_text())
    event["time"] = datetime.now(timezone.utc).isoformat()
    invoke = urllib.request.Request(
        f"{env['LAMBDA_ENDPOINT']}/2015-03-31/functions/aggregate/invocations",
        data=json.dumps(event).encode(), method="POST",
    )
    with urllib.request.urlopen(invoke, timeout=120) as answer:
        assert answer.status == 200
    summary = urllib.request.Request(
        f"{env['API_URL']}/api/v1/monitoring/performance/m-py?window=1h",
        headers={"Authorization": f"Bearer {token(tenant)}"},
    )
    with urllib.request.urlopen(summary, timeout=30) as answer:
        body = json.loads(answer.read())
    assert body["sample_count"] == 50, body
    assert body["quality_metrics"]["accuracy"]["current"] == pytest.approx(0.5), body


def test_an_invalid_token_is_refused_and_not_retried(env: Dict[str, str]) -> None:
    errors: List[DeliveryError] = []
    with Monitor(env["API_URL"], token="not-a-jwt", tasks={"m": "regression"},
                 on_error=errors.append) as monitor:
        monitor.log("m", predicted=1.0, latency_ms=1.0)
    assert [(e.kind, e.status) for e in errors] == [("rejected", 401)]
    assert monitor.stats.rejected == 1

"""A fake modelwatch HTTP API on 127.0.0.1: answers from a script, records requests."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, Iterator, List, Optional, Tuple

import pytest


@dataclass
class Received:
    path: str
    headers: Dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FakeApi:
    url: str = ""
    received: List[Received] = field(default_factory=list)
    # (status, headers) answers in turn; 202 once the script is empty.
    script: List[Tuple[int, Dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, status: int, retry_after: Optional[str] = None) -> None:
        self.script.append((status, {"Retry-After": retry_after} if retry_after else {}))

    def requests(self) -> List[Received]:
        with self.lock:
            return list(self.received)


@pytest.fixture
def api() -> Iterator[FakeApi]:
    fake = FakeApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            if fake.delay:
                threading.Event().wait(fake.delay)
            with fake.lock:
                fake.received.append(Received(self.path, dict(self.headers.items()), body))
                status, headers = fake.script.pop(0) if fake.script else (202, {})
            payload = json.dumps({"error": {"code": "scripted", "message": str(status)}}).encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()

#!/usr/bin/env python3
"""moto's server, handling one request at a time.

moto's backends are not thread-safe: under concurrent writes its DynamoDB
`TransactWriteItems` deep-copies a table while another request thread changes it
("RuntimeError: dictionary changed size during iteration", answered as a 500 that
the SDK retries and then reports as unavailable). Real DynamoDB has no such race, so
the local stack serializes requests instead of letting the emulator invent failures.
Connections are still accepted concurrently; only the application call is under the
lock. Clients must not long-poll SQS here (a waiting ReceiveMessage would hold the
lock): moto delivers SNS to SQS synchronously, so short polling sees every message.

It also installs moto_speedups: moto's Query and TransactWriteItems without their
cost in the size of the table.

Usage: moto_serial.py -H HOST -p PORT (as moto_server).
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from typing import Any, Callable, Iterable

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.server import signal_handler
from werkzeug.serving import run_simple

import moto_speedups

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def serialized(app: WsgiApp) -> WsgiApp:
    lock = threading.Lock()

    def call(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            return list(app(environ, start_response))

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, default=4566)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    moto_speedups.install()
    signal.signal(signal.SIGINT, signal_handler)
    signal.signal(signal.SIGTERM, signal_handler)
    app = DomainDispatcherApplication(create_backend_app)
    app.debug = True  # type: ignore[attr-defined]
    run_simple(args.host, args.port, serialized(app), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()

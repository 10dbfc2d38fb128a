#!/usr/bin/env python3
"""The local demo: invoke every function through the Lambda emulator and print the answers.

Run by `stack.sh demo` with stack.env exported (LAMBDA_ENDPOINT, ...). Each step
is one invocation of a function with its event from events/; later issues grow
this into the traffic simulator (see STEPS).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

# Invoke timeout: a function not prebuilt is compiled at its first invocation.
INVOKE_TIMEOUT_S = 300


def rfc3339(t: datetime) -> str:
    return t.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_ts(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def restamp_batch(event: dict[str, Any]) -> dict[str, Any]:
    """Shift the batch's timestamps so its newest lies in the minute before this one.

    Ingest accepts timestamps within [now - 7 days, now + 5 min] only, and the
    file's are fixed; relative spacing is kept. The batch id follows the new time
    so a re-run is a new batch (re-sending the same event shows `duplicate`).
    """
    event = copy.deepcopy(event)
    body = json.loads(event["body"])
    stamped = [r for r in body.get("predictions", []) + body.get("resources", []) if "timestamp" in r]
    if not stamped:
        return event
    newest = max(parse_ts(r["timestamp"]) for r in stamped)
    # In the previous minute, so the aggregation that follows finds it closed and
    # rolls it up and exports it.
    now = datetime.now(timezone.utc)
    shift = now.replace(second=0, microsecond=0) - timedelta(seconds=1) - newest
    for r in stamped:
        r["timestamp"] = rfc3339(parse_ts(r["timestamp"]) + shift)
    if "batch_id" in body:
        suffix = body["batch_id"].split("Z-", 1)[-1]
        body["batch_id"] = f"{rfc3339(newest + shift)[:19]}Z-{suffix}"
    event["body"] = json.dumps(body, separators=(",", ":"))
    now = datetime.now(timezone.utc)
    ctx = event.get("requestContext", {})
    ctx["timeEpoch"] = int(now.timestamp() * 1000)
    ctx["time"] = now.strftime("%d/%b/%Y:%H:%M:%S +0000")
    if "content-length" in event.get("headers", {}):
        event["headers"]["content-length"] = str(len(event["body"].encode()))
    return event


def scheduled_now(event: dict[str, Any]) -> dict[str, Any]:
    """A scheduled event fires now (the `time` field is the scheduled time)."""
    event = copy.deepcopy(event)
    event["time"] = datetime.now(timezone.utc).replace(microsecond=0).isoformat().replace("+00:00", "Z")
    return event


# (title, function, event file, event transformation)
STEPS: list[tuple[str, str, str, Callable[[dict[str, Any]], dict[str, Any]]]] = [
    ("a serving system pushes a batch", "ingest", "ingest-batch.json", restamp_batch),
    ("the schedule runs the aggregation", "aggregate", "aggregate-scheduled.json", scheduled_now),
    ("the schedule runs the evaluation", "evaluate", "evaluate-scheduled.json", scheduled_now),
    ("a client lists the models", "api", "api-get-models.json", lambda e: e),
    ("a client fetches the 24h summary", "api", "api-get-summary.json", lambda e: e),
]


def invoke(endpoint: str, function: str, event: dict[str, Any]) -> tuple[int, Any]:
    url = f"{endpoint}/2015-03-31/functions/{function}/invocations"
    req = urllib.request.Request(
        url, data=json.dumps(event).encode(), method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(req, timeout=INVOKE_TIMEOUT_S) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, raw = err.code, err.read()
    try:
        return status, json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return status, raw.decode(errors="replace")


def show(answer: Any) -> str:
    """Pretty JSON; an API Gateway proxy answer gets its JSON body unpacked."""
    if isinstance(answer, dict) and isinstance(answer.get("body"), str):
        answer = dict(answer)
        try:
            answer["body"] = json.loads(answer["body"])
        except json.JSONDecodeError:
            pass
    return json.dumps(answer, indent=2, sort_keys=False)


def failed(status: int, answer: Any) -> bool:
    if status != 200:
        return True
    if not isinstance(answer, dict):
        return False
    # The Runtime API's error shape (a function returned Err or panicked).
    if "errorType" in answer and "errorMessage" in answer:
        return True
    # An HTTP answer: a 4xx can be the point of a step, a 5xx never is.
    return isinstance(answer.get("statusCode"), int) and answer["statusCode"] >= 500


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=Path, required=True)
    ap.add_argument("--lambda-endpoint", default=os.environ.get("LAMBDA_ENDPOINT"))
    args = ap.parse_args()
    if not args.lambda_endpoint:
        print("demo: LAMBDA_ENDPOINT is not set (run through stack.sh demo)", file=sys.stderr)
        return 2

    failures = 0
    for i, (title, function, event_file, transform) in enumerate(STEPS, 1):
        event = transform(json.loads((args.events / event_file).read_text()))
        print(f"\n=== {i}/{len(STEPS)} {title}: {function} <- events/{event_file}", flush=True)
        started = time.monotonic()
        status, answer = invoke(args.lambda_endpoint, function, event)
        elapsed_ms = (time.monotonic() - started) * 1000
        bad = failed(status, answer)
        failures += bad
        print(f"--- {'FAILED' if bad else 'answer'} (HTTP {status}, {elapsed_ms:.0f} ms)")
        print(show(answer), flush=True)

    print(f"\n=== demo done: {len(STEPS) - failures}/{len(STEPS)} invocations succeeded")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

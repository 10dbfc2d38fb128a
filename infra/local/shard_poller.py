#!/usr/bin/env python3
"""The local stand-in for Lambda's SQS event source mappings of the shard queues.

On AWS, the template's `ShardWork` events make Lambda poll each shard queue and
invoke its function with an SQS event of one message (BatchSize 1, partial batch
responses on). moto does not run event source mappings, so this process does the
same against the local stack: for every `<FUNCTION>_SHARD_QUEUE_URL` in the stack's
environment file it polls that queue, invokes `<function>` through the Lambda
emulator with the SQS event Lambda would send, and deletes the message only when the
answer does not list it in `batchItemFailures` - a failed message becomes visible
again after the queue's visibility timeout and, after the redrive policy's receive
count, moves to the dead-letter queue (the emulator applies the redrive policy).

One thread per queue, one message at a time per queue: FIFO order within each
message group is kept because nothing of a queue is in flight concurrently (on AWS
the group does that). Each invocation is logged as one JSON line.

    infra/local/.venv/bin/python infra/local/shard_poller.py --env-file infra/local/.run/stack.env
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3

SUFFIX = "_SHARD_QUEUE_URL"
# Short polls with a pause between empty ones, not long polls: the local moto serves
# one request at a time (moto_serial.py), so a long poll would hold every other
# client of the emulator - the functions' DynamoDB calls - for its whole wait.
IDLE_POLL = 0.25
stopping = threading.Event()
printing = threading.Lock()


def read_env(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key] = value
    return env


def log(**fields: object) -> None:
    """One JSON line; the lock keeps the threads' lines whole."""
    line = json.dumps({"at": time.strftime("%H:%M:%S"), **fields})
    with printing:
        print(line, flush=True)


def sqs_event(message: dict, queue_arn: str, region: str) -> dict:
    """The event Lambda sends for one message (the shape of events/aggregate-worker.json)."""
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": message.get("Attributes", {}),
                "messageAttributes": message.get("MessageAttributes", {}),
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
        ]
    }


def invoke(lambda_endpoint: str, function: str, event: dict) -> tuple[bool, str]:
    """Invokes `function`; whether the message was handled, and the answer."""
    url = f"{lambda_endpoint.rstrip('/')}/2015-03-31/functions/{function}/invocations"
    request = urllib.request.Request(
        url, data=json.dumps(event).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=900) as response:
            text = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as e:
        return False, f"HTTP {e.code}: {e.read().decode(errors='replace')[:500]}"
    except OSError as e:
        return False, f"invocation failed: {e}"
    try:
        answer = json.loads(text)
    except ValueError:
        return False, f"HTTP {status}, not JSON: {text[:500]}"
    failed = {f.get("itemIdentifier") for f in (answer or {}).get("batchItemFailures") or []}
    handled = status == 200 and event["Records"][0]["messageId"] not in failed
    return handled, text[:500]


def poll(sqs, function: str, url: str, lambda_endpoint: str, region: str) -> None:
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    log(event="polling", function=function, queue=url)
    while not stopping.is_set():
        try:
            received = sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=1,
                WaitTimeSeconds=0,
                AttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except Exception as e:  # noqa: BLE001 - the emulator restarting: keep polling
            log(event="receive failed", function=function, error=str(e))
            stopping.wait(1)
            continue
        messages = received.get("Messages", [])
        if not messages:
            stopping.wait(IDLE_POLL)
        for message in messages:
            started = time.monotonic()
            handled, answer = invoke(lambda_endpoint, function, sqs_event(message, arn, region))
            if handled:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
            log(
                event="handled" if handled else "failed (delivered again after the visibility timeout)",
                function=function,
                body=message["Body"],
                seconds=round(time.monotonic() - started, 3),
                answer=answer,
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env-file", required=True, type=Path, help="the stack's environment (stack.env)")
    args = ap.parse_args()
    env = read_env(args.env_file)
    queues = {key[: -len(SUFFIX)].lower(): url for key, url in env.items() if key.endswith(SUFFIX) and url}
    if not queues:
        sys.exit(f"shard_poller: no *{SUFFIX} in {args.env_file}")
    region = env.get("AWS_REGION", "us-east-1")
    sqs = boto3.client(
        "sqs",
        endpoint_url=env.get("AWS_ENDPOINT_URL_SQS") or env["AWS_ENDPOINT_URL"],
        region_name=region,
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID", "test"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY", "test"),
    )
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    threads = [
        threading.Thread(target=poll, args=(sqs, fn, url, env["LAMBDA_ENDPOINT"], region), daemon=True)
        for fn, url in sorted(queues.items())
    ]
    for t in threads:
        t.start()
    while not stopping.is_set() and all(t.is_alive() for t in threads):
        stopping.wait(0.5)
    if not stopping.is_set():
        sys.exit("shard_poller: a polling thread died (see the log above)")


if __name__ == "__main__":
    main()

"""`Monitor`: buffers records on the serving thread, sends them in batches from one
background thread.

What it promises:

- `log()` never blocks on the network and never waits for a full buffer: it validates,
  appends under a lock and returns. Beyond `max_buffered` records waiting, a new
  record is dropped and counted (`stats.dropped`) — the buffer never grows unbounded.
- A batch gets its id once, and is serialized once: every retry resends the same
  bytes under the same `batch_id`, so the server counts it exactly once.
- `429`, `502`, `503`, `504`, timeouts and connection errors are retried with jittered
  exponential backoff (honouring `Retry-After`) for up to `max_retry_seconds`; any
  other refusal is not retried and is reported (log and `on_error`).
"""

from __future__ import annotations

import atexit
import functools
import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
import uuid
import weakref
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from . import records
from .records import Record, Value

logger = logging.getLogger("modelwatch_client")

__version__ = "0.1.0"

#: The server's largest batch.
MAX_BATCH_SIZE = 10_000

#: Statuses worth sending the same batch again for.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})

PREDICTIONS_PATH = "/api/v1/monitoring/predictions"
ACTUALS_PATH = "/api/v1/monitoring/actuals"


@dataclass
class Stats:
    """What a `Monitor` did so far (counts of records unless named batches)."""

    logged: int = 0
    dropped: int = 0
    sent: int = 0
    sent_batches: int = 0
    retries: int = 0
    rejected: int = 0
    failed: int = 0
    dropped_resources: int = 0


@dataclass(frozen=True)
class DeliveryError:
    """A batch that was not delivered: refused by the server (`rejected`, not retried)
    or still failing after `max_retry_seconds` (`gave_up`)."""

    kind: str
    model_id: str
    batch_id: str
    records: int
    status: Optional[int]
    detail: str


@dataclass
class _Pending:
    """Records of one batch-to-be: predictions of (model, version), or late labels."""

    path: str
    model_id: str
    task: str
    version: Optional[str]
    records: List[Record] = field(default_factory=list)
    since: float = 0.0


@dataclass(frozen=True)
class _Batch:
    path: str
    model_id: str
    batch_id: str
    body: bytes
    records: int
    resources: int


def _close_at_exit(ref: "weakref.ReferenceType[Monitor]") -> None:
    monitor = ref()
    if monitor is not None:
        monitor.close(timeout=10.0)


class Monitor:
    """Sends a serving system's predictions to modelwatch.

    ``Monitor(api_url, token=...)`` or ``token_provider=`` (called before every
    request, for tokens that expire). ``tasks`` names each model's task
    (``binary_classification``, ``multiclass_classification`` or ``regression``); a
    model not named there takes the ``task=`` of its first ``log()``.
    """

    def __init__(
        self,
        api_url: str,
        *,
        token: Optional[str] = None,
        token_provider: Optional[Callable[[], str]] = None,
        tasks: Optional[Mapping[str, str]] = None,
        batch_size: int = 1_000,
        max_batch_age: float = 5.0,
        max_buffered: int = 100_000,
        request_timeout: float = 10.0,
        max_retry_seconds: float = 300.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        on_error: Optional[Callable[[DeliveryError], None]] = None,
    ) -> None:
        if token is not None and token_provider is not None:
            raise ValueError("give token or token_provider, not both")
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be within [1, {MAX_BATCH_SIZE}]")
        if max_batch_age <= 0 or max_buffered < 1:
            raise ValueError("max_batch_age must be positive and max_buffered at least 1")
        self._url = api_url.rstrip("/")
        self._token_provider: Optional[Callable[[], str]] = (
            token_provider if token_provider is not None else (None if token is None else lambda: token)
        )
        self._tasks: Dict[str, str] = {m: records.check_task(t) for m, t in (tasks or {}).items()}
        self._batch_size = batch_size
        self._max_age = max_batch_age
        self._max_buffered = max_buffered
        self._timeout = request_timeout
        self._max_retry = max_retry_seconds
        self._backoff = (backoff_base, backoff_cap)
        self._on_error = on_error
        self._client_id = uuid.uuid4().hex[:16]
        self._sequence = 0
        self._cond = threading.Condition()
        self._pending: Dict[Tuple[str, str, Optional[str]], _Pending] = {}
        self._resources: Dict[str, List[Record]] = {}
        self._waiting = 0
        self._flush_asked = 0
        self._flush_done = 0
        self._closing = False
        self.stats = Stats()
        self._thread = threading.Thread(target=self._run, name="modelwatch-monitor", daemon=True)
        self._thread.start()
        self._atexit = functools.partial(_close_at_exit, weakref.ref(self))
        atexit.register(self._atexit)

    # ------------------------------------------------------------------ serving side

    def log(
        self,
        model_id: str,
        *,
        predicted: Optional[Value] = None,
        latency_ms: float,
        prediction_id: Optional[str] = None,
        score: Optional[float] = None,
        actual: Optional[Value] = None,
        status: str = "ok",
        error_type: Optional[str] = None,
        model_version: Optional[str] = None,
        segment: Optional[Mapping[str, str]] = None,
        timestamp: Optional[datetime] = None,
        task: Optional[str] = None,
    ) -> bool:
        """Buffers one prediction; `False` when the buffer is full and it was dropped.

        Raises `ValueError` for a record the server would refuse (naming the argument).
        """
        task = self._task_of(model_id, task)
        record = records.prediction(
            task,
            prediction_id=prediction_id,
            predicted=predicted,
            score=score,
            actual=actual,
            latency_ms=latency_ms,
            status=status,
            error_type=error_type,
            timestamp=timestamp,
            segment=segment,
        )
        if model_version is not None:
            records.check_id("model_version", model_version)
        return self._add(PREDICTIONS_PATH, model_id, task, model_version, record)

    def log_actual(
        self,
        model_id: str,
        prediction_id: str,
        actual: Value,
        *,
        timestamp: Optional[datetime] = None,
    ) -> bool:
        """Buffers the late label of an earlier prediction (by its `prediction_id`)."""
        task = self._task_of(model_id, None)
        record = records.actual_label(task, prediction_id, actual, timestamp)
        return self._add(ACTUALS_PATH, model_id, task, None, record)

    def log_resources(
        self,
        model_id: str,
        *,
        cpu_utilization: Optional[float] = None,
        memory_utilization: Optional[float] = None,
        gpu_utilization: Optional[float] = None,
        queue_depth: Optional[float] = None,
        cache_hits: Optional[int] = None,
        cache_misses: Optional[int] = None,
        timestamp: Optional[datetime] = None,
    ) -> bool:
        """Buffers a resource sample; it travels with the model's next batch of
        predictions (a batch needs at least one)."""
        records.check_id("model_id", model_id)
        sample = records.resource_sample(
            timestamp=timestamp,
            cpu_utilization=cpu_utilization,
            memory_utilization=memory_utilization,
            gpu_utilization=gpu_utilization,
            queue_depth=queue_depth,
            cache_hits=cache_hits,
            cache_misses=cache_misses,
        )
        with self._cond:
            if not self._room():
                return False
            self._resources.setdefault(model_id, []).append(sample)
            return True

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Sends everything logged so far; `False` if `timeout` passed first."""
        with self._cond:
            self._flush_asked += 1
            wanted = self._flush_asked
            self._cond.notify_all()
            return self._cond.wait_for(lambda: self._flush_done >= wanted, timeout)

    def close(self, timeout: Optional[float] = None) -> None:
        """Sends everything logged so far and stops the background thread."""
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._flush_asked += 1
            self._cond.notify_all()
        self._thread.join(timeout)
        atexit.unregister(self._atexit)

    def __enter__(self) -> "Monitor":
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _task_of(self, model_id: str, task: Optional[str]) -> str:
        records.check_id("model_id", model_id)
        known = self._tasks.get(model_id)
        if task is not None:
            records.check_task(task)
            if known is not None and known != task:
                raise ValueError(f"model {model_id!r} was logged as {known}, not {task}")
            self._tasks.setdefault(model_id, task)
            return task
        if known is None:
            raise ValueError(f"the task of model {model_id!r} is unknown: pass task= (or tasks= to Monitor)")
        return known

    def _room(self) -> bool:
        """Counts one more record if it fits (the lock held); else counts it dropped."""
        if self._closing:
            raise RuntimeError("the Monitor is closed")
        self.stats.logged += 1
        if self._waiting >= self._max_buffered:
            self.stats.dropped += 1
            return False
        self._waiting += 1
        return True

    def _add(self, path: str, model_id: str, task: str, version: Optional[str], record: Record) -> bool:
        with self._cond:
            if not self._room():
                return False
            key = (path, model_id, version)
            pending = self._pending.get(key)
            if pending is None:
                pending = self._pending[key] = _Pending(path, model_id, task, version, since=time.monotonic())
                # A new buffer has an age deadline the sender must wait for.
                self._cond.notify_all()
            pending.records.append(record)
            if len(pending.records) >= self._batch_size:
                self._cond.notify_all()
            return True

    # ------------------------------------------------------------------ sender side

    def _run(self) -> None:
        while True:
            with self._cond:
                batches, flush_pass, finished = self._next_batches()
            for batch in batches:
                self._send(batch)
            with self._cond:
                self._waiting -= sum(b.records + b.resources for b in batches)
                if flush_pass is not None:
                    self._flush_done = max(self._flush_done, flush_pass)
                self._cond.notify_all()
                if finished:
                    return

    def _next_batches(self) -> Tuple[List[_Batch], Optional[int], bool]:
        """Waits (the lock held) until a batch is due; answers the batches cut, the
        flush request they serve, and whether the thread is done."""
        while True:
            flushing = self._flush_asked > self._flush_done
            now = time.monotonic()
            due = [
                key
                for key, p in self._pending.items()
                if flushing or len(p.records) >= self._batch_size or now - p.since >= self._max_age
            ]
            if due or flushing:
                batches = [b for key in due for b in self._cut(key, everything=flushing)]
                finished = self._closing and not self._pending
                if finished:
                    left = sum(len(samples) for samples in self._resources.values())
                    self.stats.dropped_resources += left
                    self._waiting -= left
                    self._resources.clear()
                return batches, (self._flush_asked if flushing else None), finished
            deadlines = [p.since + self._max_age for p in self._pending.values()]
            self._cond.wait(max(0.0, min(deadlines) - now) if deadlines else None)

    def _cut(self, key: Tuple[str, str, Optional[str]], everything: bool) -> List[_Batch]:
        """Whole batches of `key`'s records (and the rest too when `everything`)."""
        pending = self._pending[key]
        batches = []
        while pending.records and (everything or len(pending.records) >= self._batch_size
                                   or time.monotonic() - pending.since >= self._max_age):
            chunk = pending.records[: self._batch_size]
            del pending.records[: self._batch_size]
            batches.append(self._batch(pending, chunk))
        if pending.records:
            pending.since = time.monotonic()
        else:
            del self._pending[key]
        return batches

    def _batch(self, pending: _Pending, chunk: List[Record]) -> _Batch:
        """The batch of `chunk`: its id and its bytes, made once."""
        self._sequence += 1
        batch_id = f"{self._client_id}-{self._sequence}"
        body: Record = {"model_id": pending.model_id, "batch_id": batch_id}
        resources = 0
        if pending.path == ACTUALS_PATH:
            body["actuals"] = chunk
        else:
            body["task"] = pending.task
            if pending.version is not None:
                body["model_version"] = pending.version
            body["predictions"] = chunk
            samples = self._resources.pop(pending.model_id, [])
            if samples:
                body["resources"] = samples[:MAX_BATCH_SIZE]
                resources = len(body["resources"])
                if samples[MAX_BATCH_SIZE:]:
                    self._resources[pending.model_id] = samples[MAX_BATCH_SIZE:]
        encoded = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        return _Batch(pending.path, pending.model_id, batch_id, encoded, len(chunk), resources)

    def _send(self, batch: _Batch) -> None:
        """Sends `batch` until it is answered, refused, or `max_retry_seconds` passed."""
        deadline = time.monotonic() + self._max_retry
        attempt = 0
        while True:
            status, retry_after, detail = self._post(batch)
            if status is not None and 200 <= status < 300:
                self.stats.sent += batch.records
                self.stats.sent_batches += 1
                return
            if status is not None and status not in RETRYABLE_STATUSES:
                self.stats.rejected += batch.records
                self._report(DeliveryError("rejected", batch.model_id, batch.batch_id, batch.records, status, detail))
                return
            base, cap = self._backoff
            delay = max(min(cap, base * 2**attempt) * random.uniform(0.5, 1.5), retry_after or 0.0)
            if time.monotonic() + delay > deadline:
                self.stats.failed += batch.records
                self._report(DeliveryError("gave_up", batch.model_id, batch.batch_id, batch.records, status, detail))
                return
            self.stats.retries += 1
            attempt += 1
            time.sleep(delay)

    def _post(self, batch: _Batch) -> Tuple[Optional[int], Optional[float], str]:
        """One attempt: (status or None without an answer, Retry-After seconds, detail)."""
        headers = {
            "Content-Type": "application/json",
            "User-Agent": f"modelwatch-client/{__version__}",
        }
        try:
            if self._token_provider is not None:
                headers["Authorization"] = f"Bearer {self._token_provider()}"
            request = urllib.request.Request(self._url + batch.path, data=batch.body, headers=headers, method="POST")
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return int(response.status), None, ""
        except urllib.error.HTTPError as err:
            text = err.read(2048).decode("utf-8", "replace")
            return err.code, _retry_after(err.headers.get("Retry-After")), text
        except Exception as err:  # noqa: BLE001 - any failure to get an answer is retried
            return None, None, f"{type(err).__name__}: {err}"

    def _report(self, error: DeliveryError) -> None:
        logger.warning(
            "modelwatch batch %s of %s not delivered (%s, status %s): %s",
            error.batch_id, error.model_id, error.kind, error.status, error.detail,
        )
        if self._on_error is not None:
            try:
                self._on_error(error)
            except Exception:  # noqa: BLE001 - a failing callback must not stop the sender
                logger.exception("modelwatch on_error callback failed")


def _retry_after(value: Optional[str]) -> Optional[float]:
    """Seconds of a `Retry-After` (delay-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None

"""The records a `Monitor` buffers, validated on the serving thread.

Each check mirrors the server's batch contract (docs/openapi.yaml: `PredictionBatch`,
`ActualsBatch`), so a mistake fails fast in the serving code, naming the argument,
instead of as a 400 for a whole batch later.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any, Dict, Mapping, Optional, Union

#: The tasks a model may have.
TASKS = ("binary_classification", "multiclass_classification", "regression")

#: Ids (model, batch, prediction, error type, version): 1 to 128 of these characters.
ID_PATTERN = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")

#: The reserved name of the server's overflow bucket (not a label, an error type or a
#: segment key or value).
OVERFLOW_BUCKET = "__other__"

#: The most keys one prediction's segment may carry.
MAX_SEGMENT_KEYS = 8

#: A predicted or actual value: a class (bool, int or str) or a regression number.
Value = Union[bool, int, float, str]

#: One record as JSON.
Record = Dict[str, Any]


def check_id(name: str, value: str) -> str:
    """`value` if it is a valid id, else `ValueError` naming `name`."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise ValueError(f"{name} must be 1 to 128 of A-Z a-z 0-9 . _ : @ - (got {value!r})")
    return value


def check_segment(segment: Mapping[str, str]) -> Dict[str, str]:
    """`segment` as a dict if the server would take it: at most `MAX_SEGMENT_KEYS` keys,
    each an id without ':' mapped to an id, `__other__` neither."""
    if not isinstance(segment, Mapping):
        raise ValueError(f"segment must be a mapping of str to str (got {segment!r})")
    if len(segment) > MAX_SEGMENT_KEYS:
        raise ValueError(f"segment has {len(segment)} keys; at most {MAX_SEGMENT_KEYS} are allowed")
    for key, value in segment.items():
        check_id("segment key", key)
        if ":" in key:
            raise ValueError(f"segment key {key!r} must not contain ':'")
        check_id(f"segment[{key!r}]", value)
        if OVERFLOW_BUCKET in (key, value):
            raise ValueError(f"segment[{key!r}] must not use {OVERFLOW_BUCKET!r} (reserved)")
    return dict(segment)


def check_task(task: str) -> str:
    """`task` if it is one of `TASKS`."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)} (got {task!r})")
    return task


def timestamp_of(at: Optional[datetime]) -> str:
    """RFC 3339 in UTC with milliseconds; now when `at` is None. A naive `at` is UTC."""
    moment = at or datetime.now(timezone.utc)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _number(name: str, value: float, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number (got {value!r})")
    if not math.isfinite(value) or not low <= value <= high:
        raise ValueError(f"{name} must be within [{low:g}, {high:g}] (got {value!r})")
    return float(value)


def check_value(name: str, value: Value, task: str) -> Value:
    """A predicted or actual `value` of a model of `task`."""
    if task == "binary_classification":
        if value in (0, 1) and isinstance(value, (bool, int)):
            return value
        raise ValueError(f"{name} of a binary classifier must be 0, 1, True or False (got {value!r})")
    if task == "multiclass_classification":
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{name} of a multiclass classifier must be a str or int label (got {value!r})")
        if value == OVERFLOW_BUCKET:
            raise ValueError(f"{name} must not be {OVERFLOW_BUCKET!r} (reserved)")
        return value
    number = _number(name, value, -1e100, 1e100)  # type: ignore[arg-type]
    if number != 0.0 and abs(number) < 1e-100:
        raise ValueError(f"{name} must be 0 or of magnitude at least 1e-100 (got {value!r})")
    return value


def prediction(
    task: str,
    *,
    prediction_id: Optional[str],
    predicted: Optional[Value],
    score: Optional[float],
    actual: Optional[Value],
    latency_ms: float,
    status: str,
    error_type: Optional[str],
    timestamp: Optional[datetime],
    segment: Optional[Mapping[str, str]] = None,
) -> Record:
    """One prediction record, as the batch contract has it."""
    record: Record = {
        "timestamp": timestamp_of(timestamp),
        "latency_ms": _number("latency_ms", latency_ms, 0.0, 1e9),
        "status": status,
    }
    if prediction_id is not None:
        record["prediction_id"] = check_id("prediction_id", prediction_id)
    if status == "ok":
        if predicted is None:
            raise ValueError("predicted is required when status is 'ok'")
        if error_type is not None:
            raise ValueError("error_type is only for status 'error'")
        record["predicted"] = check_value("predicted", predicted, task)
    elif status == "error":
        if error_type is None:
            raise ValueError("error_type is required when status is 'error'")
        if predicted is not None:
            raise ValueError("predicted must be absent when status is 'error'")
        if error_type == OVERFLOW_BUCKET:
            raise ValueError(f"error_type must not be {OVERFLOW_BUCKET!r} (reserved)")
        record["error_type"] = check_id("error_type", error_type)
    else:
        raise ValueError(f"status must be 'ok' or 'error' (got {status!r})")
    if actual is not None:
        record["actual"] = check_value("actual", actual, task)
    if score is not None:
        if task == "regression":
            raise ValueError("score is for classifiers only")
        record["score"] = _number("score", score, 0.0, 1.0)
    if segment:
        record["segment"] = check_segment(segment)
    return record


def resource_sample(
    *,
    timestamp: Optional[datetime],
    cpu_utilization: Optional[float],
    memory_utilization: Optional[float],
    gpu_utilization: Optional[float],
    queue_depth: Optional[float],
    cache_hits: Optional[int],
    cache_misses: Optional[int],
) -> Record:
    """One resource sample."""
    record: Record = {"timestamp": timestamp_of(timestamp)}
    fractions = {
        "cpu_utilization": cpu_utilization,
        "memory_utilization": memory_utilization,
        "gpu_utilization": gpu_utilization,
    }
    for name, fraction in fractions.items():
        if fraction is not None:
            record[name] = _number(name, fraction, 0.0, 1.0)
    if queue_depth is not None:
        record["queue_depth"] = _number("queue_depth", queue_depth, 0.0, 1e12)
    for name, count in (("cache_hits", cache_hits), ("cache_misses", cache_misses)):
        if count is not None:
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= 10**9:
                raise ValueError(f"{name} must be a whole number within [0, 1e9] (got {count!r})")
            record[name] = count
    if len(record) == 1:
        raise ValueError("a resource sample needs at least one measurement")
    return record


def actual_label(
    task: str, prediction_id: str, actual: Value, timestamp: Optional[datetime]
) -> Record:
    """One late label."""
    record: Record = {
        "prediction_id": check_id("prediction_id", prediction_id),
        "actual": check_value("actual", actual, task),
    }
    if timestamp is not None:
        record["timestamp"] = timestamp_of(timestamp)
    return record

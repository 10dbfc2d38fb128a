"""The client against a fake API: batching, the same bytes on every retry, what is
not retried, the bounded buffer, validation on the serving thread, flush on close."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import pytest

from modelwatch_client import DeliveryError, Monitor

from conftest import FakeApi

FAST = dict(backoff_base=0.01, backoff_cap=0.05, max_batch_age=60.0)


def monitor(api: FakeApi, **options: object) -> Monitor:
    settings = {**FAST, **options}
    return Monitor(api.url, token="t0ken", tasks={"fraud": "binary_classification"}, **settings)  # type: ignore[arg-type]


def test_batches_by_size_and_the_rest_on_close(api: FakeApi) -> None:
    with monitor(api, batch_size=3) as m:
        for i in range(7):
            assert m.log("fraud", predicted=i % 2, score=0.5, latency_ms=10.0 + i, prediction_id=f"p{i}")
        deadline = time.monotonic() + 5
        while len(api.requests()) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(api.requests()) == 2, "full batches go without waiting"
    sent = [r.json() for r in api.requests()]
    assert [len(b["predictions"]) for b in sent] == [3, 3, 1]
    assert len({b["batch_id"] for b in sent}) == 3
    first = sent[0]
    assert first["model_id"] == "fraud" and first["task"] == "binary_classification"
    assert first["predictions"][0]["prediction_id"] == "p0"
    assert first["predictions"][0]["timestamp"].endswith("Z")
    assert api.requests()[0].path == "/api/v1/monitoring/predictions"
    assert api.requests()[0].headers["Authorization"] == "Bearer t0ken"
    assert m.stats.sent == 7 and m.stats.sent_batches == 3


def test_a_batch_older_than_max_batch_age_goes_by_itself(api: FakeApi) -> None:
    m = monitor(api, max_batch_age=0.1)
    m.log("fraud", predicted=True, latency_ms=3.0)
    deadline = time.monotonic() + 5
    while not api.requests() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(api.requests()) == 1
    m.close()


def test_retries_resend_the_same_bytes_and_honour_retry_after(api: FakeApi) -> None:
    api.answer(503)
    api.answer(429, retry_after="0")
    api.answer(504)
    with monitor(api) as m:
        m.log("fraud", predicted=0, latency_ms=1.0)
    bodies = [r.body for r in api.requests()]
    assert len(bodies) == 4 and len(set(bodies)) == 1, "one batch, sent again byte for byte"
    assert m.stats.retries == 3 and m.stats.sent == 1


def test_a_refusal_is_not_retried_and_is_reported(api: FakeApi) -> None:
    errors: List[DeliveryError] = []
    api.answer(400)
    with monitor(api, on_error=errors.append) as m:
        m.log("fraud", predicted=1, latency_ms=1.0)
    assert len(api.requests()) == 1
    assert [(e.kind, e.status, e.records) for e in errors] == [("rejected", 400, 1)]
    assert "scripted" in errors[0].detail
    assert m.stats.rejected == 1 and m.stats.sent == 0


def test_a_receiver_down_for_longer_than_max_retry_seconds_is_given_up_and_reported(api: FakeApi) -> None:
    errors: List[DeliveryError] = []
    for _ in range(100):
        api.answer(503)
    with monitor(api, on_error=errors.append, max_retry_seconds=0.2) as m:
        m.log("fraud", predicted=1, latency_ms=1.0)
    assert [e.kind for e in errors] == ["gave_up"]
    assert m.stats.failed == 1
    assert len({r.body for r in api.requests()}) == 1


def test_no_answer_is_retried(api: FakeApi) -> None:
    # Nothing listens here: connection refused, then the real API answers.
    m = Monitor("http://127.0.0.1:9", token="x", tasks={"fraud": "regression"}, max_retry_seconds=0.2, **FAST)  # type: ignore[arg-type]
    m.log("fraud", predicted=1.5, latency_ms=1.0)
    m.close()
    assert m.stats.failed == 1 and m.stats.retries >= 1


def test_a_full_buffer_drops_and_counts_without_blocking(api: FakeApi) -> None:
    api.delay = 0.2  # the sender is busy with the first batch
    m = monitor(api, max_buffered=5, batch_size=1)
    started = time.perf_counter()
    kept = [m.log("fraud", predicted=1, latency_ms=1.0) for _ in range(20)]
    elapsed = time.perf_counter() - started
    assert elapsed < 0.25, f"log() waited {elapsed:.3f} s"
    assert kept.count(False) == m.stats.dropped and m.stats.dropped >= 15
    m.close()
    assert m.stats.sent == kept.count(True)
    assert m.stats.logged == 20


def test_versions_go_in_their_own_batches_and_labels_to_actuals(api: FakeApi) -> None:
    with monitor(api) as m:
        m.log("fraud", predicted=1, latency_ms=1.0, model_version="v1", prediction_id="a", segment={"region": "eu"})
        m.log("fraud", predicted=0, latency_ms=1.0, model_version="v2", prediction_id="b")
        m.log_actual("fraud", "a", True)
        m.log_resources("fraud", cpu_utilization=0.5, queue_depth=3)
    by_path: Dict[str, List[Any]] = {}
    for r in api.requests():
        by_path.setdefault(r.path, []).append(r.json())
    versions = sorted(b["model_version"] for b in by_path["/api/v1/monitoring/predictions"])
    assert versions == ["v1", "v2"]
    segments = [p.get("segment") for b in by_path["/api/v1/monitoring/predictions"] for p in b["predictions"]]
    assert sorted(segments, key=str) == [None, {"region": "eu"}]
    resources = [b["resources"] for b in by_path["/api/v1/monitoring/predictions"] if "resources" in b]
    assert len(resources) == 1, "the samples ride with one batch of the model"
    (sample,) = resources[0]
    assert sample["timestamp"].endswith("Z")
    assert {k: v for k, v in sample.items() if k != "timestamp"} == {"cpu_utilization": 0.5, "queue_depth": 3.0}
    (labels,) = by_path["/api/v1/monitoring/actuals"]
    assert labels["actuals"] == [{"prediction_id": "a", "actual": True}]
    assert "task" not in labels


def test_resources_without_any_prediction_are_counted_dropped_at_close(api: FakeApi) -> None:
    m = monitor(api)
    m.log_resources("fraud", gpu_utilization=0.9)
    m.close()
    assert api.requests() == []
    assert m.stats.dropped_resources == 1


def test_a_token_provider_is_asked_on_every_attempt(api: FakeApi) -> None:
    tokens = iter(["one", "two"])
    api.answer(503)
    m = Monitor(api.url, token_provider=lambda: next(tokens), tasks={"m": "regression"}, **FAST)  # type: ignore[arg-type]
    m.log("m", predicted=2.0, latency_ms=1.0)
    m.close()
    assert [r.headers["Authorization"] for r in api.requests()] == ["Bearer one", "Bearer two"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(latency_ms=1.0), "predicted is required"),
        (dict(predicted=2, latency_ms=1.0), "must be 0, 1, True or False"),
        (dict(predicted=1, latency_ms=-1.0), "latency_ms must be within"),
        (dict(predicted=1, latency_ms=1.0, score=1.5), "score must be within"),
        (dict(status="error", latency_ms=1.0), "error_type is required"),
        (dict(predicted=1, latency_ms=1.0, prediction_id="has space"), "prediction_id must be"),
        (dict(predicted=1, latency_ms=1.0, model_version="v 2"), "model_version must be"),
        (dict(predicted=1, latency_ms=float("nan")), "latency_ms must be within"),
        (dict(predicted=1, latency_ms=1.0, segment={"re:gion": "eu"}), "must not contain ':'"),
        (dict(predicted=1, latency_ms=1.0, segment={"region": "e u"}), "segment\\['region'\\] must be"),
        (dict(predicted=1, latency_ms=1.0, segment={"region": "__other__"}), "reserved"),
        (dict(predicted=1, latency_ms=1.0, segment={f"k{i}": "v" for i in range(9)}), "at most 8"),
    ],
)
def test_invalid_records_fail_on_the_serving_thread(api: FakeApi, kwargs: dict, message: str) -> None:  # type: ignore[type-arg]
    with monitor(api) as m:
        with pytest.raises(ValueError, match=message):
            m.log("fraud", **kwargs)
    assert api.requests() == []


def test_the_task_must_be_known_and_kept(api: FakeApi) -> None:
    with Monitor(api.url, **FAST) as m:  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="task of model 'other' is unknown"):
            m.log("other", predicted=1.0, latency_ms=1.0)
        m.log("other", predicted=1.0, latency_ms=1.0, task="regression")
        m.log("other", predicted=2.0, latency_ms=1.0)
        with pytest.raises(ValueError, match="was logged as regression"):
            m.log("other", predicted=1, latency_ms=1.0, task="binary_classification")
        with pytest.raises(ValueError, match="score is for classifiers only"):
            m.log("other", predicted=1.0, latency_ms=1.0, score=0.3)
    assert [len(r.json()["predictions"]) for r in api.requests()] == [2]


def test_flush_sends_what_was_logged_and_log_after_close_is_an_error(api: FakeApi) -> None:
    m = monitor(api)
    m.log("fraud", predicted=1, latency_ms=1.0)
    assert m.flush(timeout=5)
    assert len(api.requests()) == 1
    m.close()
    with pytest.raises(RuntimeError, match="closed"):
        m.log("fraud", predicted=1, latency_ms=1.0)


def test_an_unclosed_monitor_flushes_at_interpreter_exit(api: FakeApi) -> None:
    import subprocess
    import sys
    from pathlib import Path

    src = Path(__file__).resolve().parents[1] / "src"
    script = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from modelwatch_client import Monitor\n"
        "m = Monitor(sys.argv[2], token='t', tasks={'fraud': 'binary_classification'}, max_batch_age=60)\n"
        "m.log('fraud', predicted=1, latency_ms=1.0)\n"
    )
    subprocess.run([sys.executable, "-c", script, str(src), api.url], check=True, timeout=30)
    assert len(api.requests()) == 1, "the atexit hook sent the buffered record"

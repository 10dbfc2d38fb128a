"""A FastAPI model server that reports every prediction to modelwatch.

    pip install fastapi uvicorn ./clients/python
    MODELWATCH_API_URL=https://<api>.execute-api.<region>.amazonaws.com \\
    MODELWATCH_TOKEN=<a JWT carrying your tenant claim> \\
    uvicorn fastapi_app:app

`log()` only appends to the Monitor's buffer: the request is never held up by
modelwatch, and a modelwatch outage costs at most the buffer (counted in
`monitor.stats.dropped`), never the serving.
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Dict, List

from fastapi import FastAPI
from pydantic import BaseModel

from modelwatch_client import Monitor

MODEL = "fraud-v1"

monitor = Monitor(
    os.environ["MODELWATCH_API_URL"],
    token=os.environ["MODELWATCH_TOKEN"],
    tasks={MODEL: "binary_classification"},
)
app = FastAPI()


class Transaction(BaseModel):
    features: List[float]


class Label(BaseModel):
    prediction_id: str
    fraud: bool


def score(features: List[float]) -> float:
    """Stands in for the real model."""
    return min(1.0, max(0.0, sum(features) / (len(features) or 1)))


@app.post("/predict")
def predict(transaction: Transaction) -> Dict[str, object]:
    started = time.perf_counter()
    prediction_id = uuid.uuid4().hex
    probability = score(transaction.features)
    fraud = probability >= 0.5
    monitor.log(
        MODEL,
        prediction_id=prediction_id,
        predicted=fraud,
        score=probability,
        latency_ms=(time.perf_counter() - started) * 1000,
        model_version=os.environ.get("MODEL_VERSION"),
    )
    return {"prediction_id": prediction_id, "fraud": fraud, "score": probability}


@app.post("/labels")
def label(label: Label) -> Dict[str, bool]:
    """The truth, when a chargeback (or its absence) settles it."""
    return {"buffered": monitor.log_actual(MODEL, label.prediction_id, label.fraud)}


@app.on_event("shutdown")
def close_monitor() -> None:
    monitor.close(timeout=10)

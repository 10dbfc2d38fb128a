"""modelwatch's Python client: `Monitor` batches a serving system's predictions, late
labels and resource samples and sends them to the modelwatch HTTP API.

    from modelwatch_client import Monitor

    monitor = Monitor("https://api.example.com", token_provider=get_token,
                      tasks={"fraud-v1": "binary_classification"})
    monitor.log("fraud-v1", predicted=1, score=0.92, latency_ms=12.5,
                prediction_id=request_id)
"""

from .monitor import DeliveryError, Monitor, Stats, __version__
from .records import TASKS

__all__ = ["DeliveryError", "Monitor", "Stats", "TASKS", "__version__"]

"""Prometheus metrics under TF Serving's names, in a registry of the server's own.

TF Serving exports its monitoring metrics to Prometheus with the metric path's
slashes turned into colons (`/tensorflow/serving/request_count` is scraped as
`:tensorflow:serving:request_count`); the same names are used here so dashboards
and alerts written for TF Serving keep working:

- `:tensorflow:serving:request_count{model_name,status}` (counter)
- `:tensorflow:serving:request_latency{model_name,API,entrypoint,status}` and
  `:tensorflow:serving:runtime_latency{model_name,API,runtime}` (histograms, µs)
- `:tensorflow:serving:batching:batch_size{model_name,op_name}` and
  `:tensorflow:serving:batching:padding_size{model_name,op_name}` (histograms of
  the rows in each processed batch and of the padding added to it)

The REST server answers the monitoring config's path with `exposition()`.

Example:
    >>> metrics = Metrics()
    >>> content_type, body = metrics.exposition()
"""

import threading

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import Metric

# TF Serving's own bucket layouts: latency exponential(10, 1.8, 33) in µs, batch
# sizes exponential(1, 1.5, 20) (tensorflow/serving/.../batching_util).
_LATENCY_BUCKETS = tuple(10 * 1.8**i for i in range(33))
_BATCH_BUCKETS = tuple(round(1.5**i, 6) for i in range(20))
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"


class _Counter:
    """A counter exposed under its exact name (prometheus_client would append _total)."""

    def __init__(self, name, documentation, labelnames, registry):
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._values = {}
        self._lock = threading.Lock()
        registry.register(self)

    def inc(self, *labels, amount=1):
        with self._lock:
            self._values[labels] = self._values.get(labels, 0) + amount

    def value(self, *labels):
        with self._lock:
            return self._values.get(labels, 0)

    def collect(self):
        metric = Metric(self.name, self.documentation, "unknown")
        with self._lock:
            for labels, value in self._values.items():
                metric.add_sample(self.name, dict(zip(self.labelnames, labels)), value)
        yield metric

    def describe(self):
        return [Metric(self.name, self.documentation, "unknown")]


class Metrics:
    """The server's metrics, in a registry of its own (so several servers can coexist)."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self._children = {}
        self.request_count = _Counter(
            ":tensorflow:serving:request_count",
            "The total number of requests.",
            ("model_name", "status"),
            self.registry,
        )
        self.request_latency = Histogram(
            ":tensorflow:serving:request_latency",
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            ("model_name", "API", "entrypoint", "status"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.runtime_latency = Histogram(
            ":tensorflow:serving:runtime_latency",
            "Distribution of wall time (in microseconds) for Tensorflow runtime.",
            ("model_name", "API", "runtime"),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            ":tensorflow:serving:batching:batch_size",
            "Tracks the batch size distribution on processing by model_name.",
            ("model_name", "op_name"),
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )
        self.padding_size = Histogram(
            ":tensorflow:serving:batching:padding_size",
            "Tracks the padding size distribution on batches by model_name.",
            ("model_name", "op_name"),
            buckets=_BATCH_BUCKETS,
            registry=self.registry,
        )

    def record_request(self, model_name, api, entrypoint, status, latency_us):
        """Count one request and its latency; `status` is a code name such as "OK"."""
        self.request_count.inc(model_name, status)
        self._child(self.request_latency, (model_name, api, entrypoint, status)).observe(latency_us)

    def record_runtime(self, model_name, api, runtime, latency_us):
        """Time spent running the model (`runtime`: "TF1" or "TF2")."""
        self._child(self.runtime_latency, (model_name, api, runtime)).observe(latency_us)

    def record_batch(self, model_name, op_name, size, padding):
        """One processed batch of `size` real rows plus `padding` padded ones."""
        self._child(self.batch_size, (model_name, op_name)).observe(size)
        self._child(self.padding_size, (model_name, op_name)).observe(padding)

    def _child(self, metric, labels):
        # `labels()` takes the metric's lock and builds its key on every call; the
        # children never change once made, so each request looks its own up here.
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def exposition(self):
        """The Prometheus text exposition: (content_type, body bytes)."""
        return CONTENT_TYPE_LATEST, generate_latest(self.registry)

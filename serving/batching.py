"""Server-side batching across concurrent requests, with TF Serving's parameters.

Like TF Serving's BatchingSession over a SharedBatchScheduler: each request ("task")
joins the open batch of its queue; a batch closes when the next task would not fit
in `max_batch_size`; a thread from a pool of `num_batch_threads` takes a closed
batch, or an open one once its oldest task has waited `batch_timeout_micros`,
concatenates the tasks' inputs along the 0th dimension, pads the result up to the
next of `allowed_batch_sizes` with copies of the first row, runs the model once and
hands every task its own rows of each output. At most `max_enqueued_batches`
batches wait per queue; beyond that a task is refused with UNAVAILABLE, as there.

Tasks only share a batch when they can be concatenated: same servable, signature
and requested outputs, and the same dtype and non-batch shape for every input (so
`pad_variable_length_inputs` is never needed to form a batch: tasks whose shapes
differ simply go to different queues).

A scalar input (a SignatureDef default such as `beam_size`, or one a request sends)
has no batch dimension to concatenate along. TF Serving's BatchingSession refuses it
("Batching Run() input tensors must have at least one dimension"); here the scalar's
value joins the queue key instead, so tasks share a batch only with tasks whose
scalars are equal, and the batch is fed that one scalar. A request whose inputs are
all scalars has no rows to batch and runs on its own. A drained queue is dropped, so
a stream of distinct scalars (or shapes) does not leave a queue behind for each.

Example:
    >>> scheduler = BatchScheduler(BatchingOptions(max_batch_size=32), metrics)
    >>> outputs = scheduler.run(servable, "serving_default", {"image": x}, ("probabilities",))
    >>> scheduler.stop()
"""

import asyncio
import collections
import dataclasses
import logging
import os
import threading
import time
from _thread import allocate_lock as _allocate_lock

import grpc
import numpy as np

from serving.errors import ServingError
from serving.servables import as_serving_error

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class BatchingOptions:
    """TF Serving's BatchingParameters with its defaults (see batching_session.h)."""

    max_batch_size: int = 1000
    batch_timeout_micros: int = 0
    max_enqueued_batches: int = 10
    num_batch_threads: int = dataclasses.field(default_factory=lambda: os.cpu_count() or 1)
    thread_pool_name: str = "batch_threads"
    allowed_batch_sizes: tuple = ()
    pad_variable_length_inputs: bool = False

    @classmethod
    def from_proto(cls, params):
        """Options from a `tensorflow.serving.BatchingParameters`, unset fields defaulted."""
        kwargs = {}
        for field in ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                      "num_batch_threads", "thread_pool_name"):
            if params.HasField(field):
                kwargs[field] = getattr(params, field).value
        kwargs["allowed_batch_sizes"] = tuple(params.allowed_batch_sizes)
        kwargs["pad_variable_length_inputs"] = params.pad_variable_length_inputs
        return cls(**kwargs)

    def validate(self):
        """Raise INVALID_ARGUMENT for parameters TF Serving refuses at start-up."""
        def bad(message):
            return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)

        if self.max_batch_size <= 0:
            raise bad("max_batch_size must be positive")
        if self.num_batch_threads <= 0:
            raise bad("num_batch_threads must be positive")
        if self.batch_timeout_micros < 0:
            raise bad("batch_timeout_micros must be non-negative")
        if self.max_enqueued_batches <= 0:
            raise bad("max_enqueued_batches must be positive")
        sizes = self.allowed_batch_sizes
        if sizes:
            if any(b <= a for a, b in zip(sizes, sizes[1:])) or sizes[0] <= 0:
                raise bad("allowed_batch_sizes entries must be monotonically increasing")
            if sizes[-1] != self.max_batch_size:
                raise bad("final entry in allowed_batch_sizes must equal max_batch_size")
        return self


class _Task:
    """One request's inputs, waiting for its rows of a batch's outputs.

    `done` is a bare lock, held from creation until the batch thread releases it:
    the cheapest way to wake exactly one waiting thread (an Event builds a
    Condition and a waiter lock per wait), and it is made once per request.
    """

    __slots__ = ("inputs", "size", "done", "outputs", "error", "cancelled", "sink", "waiter")

    def __init__(self, inputs, size, sink=None, waiter=None):
        self.inputs = inputs
        self.size = size
        self.sink = sink
        self.waiter = waiter
        if sink is None:
            self.done = _allocate_lock()
            self.done.acquire()
        else:
            self.done = None
        self.outputs = None
        self.error = None
        self.cancelled = False

    def result(self):
        """This task's outputs, or raise its error (once the batch has run)."""
        if self.error is not None:
            raise self.error
        return self.outputs


def _scalar_key(array):
    """A hashable stand-in for a scalar's value: its bytes (NaN equals NaN), or the
    Python object of a string scalar (whose array holds a pointer)."""
    return array.item() if array.dtype == object else array.tobytes()


def _expire(future):
    if not future.done():
        future.set_exception(ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


def _resolve(tasks):
    for task in tasks:
        if not task.waiter.done():
            task.waiter.set_result(None)


class _LoopSink:
    """Hands a batch's finished tasks to the event loop that awaits them, in one call."""

    __slots__ = ("_loop",)

    def __init__(self, loop):
        self._loop = loop

    def __call__(self, tasks):
        try:
            self._loop.call_soon_threadsafe(_resolve, tasks)
        except RuntimeError:  # the loop has closed: nobody is waiting any more
            pass


class _Queue:
    """The open batch and the closed batches of one (servable, signature, shapes) key."""

    def __init__(self, servable, signature_name, output_keys):
        self.servable = servable
        self.signature_name = signature_name
        self.output_keys = output_keys
        self.open = []
        self.open_size = 0
        self.open_since = 0.0
        self.closed = collections.deque()

    def close_open(self):
        if self.open:
            self.closed.append(self.open)
            self.open, self.open_size = [], 0


class BatchScheduler:
    """Batches `run` calls from many threads onto `num_batch_threads` workers.

    Args:
        options: a `BatchingOptions`.
        metrics: a `serving.metrics.Metrics` (batch size and padding histograms),
            or None.
    """

    def __init__(self, options: BatchingOptions, metrics=None):
        self.options = options.validate()
        self._metrics = metrics
        self._cv = threading.Condition()
        self._queues = {}
        self._sinks = {}  # event loop -> _LoopSink
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{options.thread_pool_name}_{i}", daemon=True)
            for i in range(options.num_batch_threads)
        ]
        for thread in self._threads:
            thread.start()

    def run(self, servable, signature_name, inputs, output_keys, timeout=None):
        """Run one request's inputs as part of a batch and return its own output rows.

        Args:
            servable: the loaded model version (`serving.servables.Servable`).
            signature_name: the signature to run.
            inputs: dict of input alias -> numpy array, each batched along dim 0
                except scalars (see the module's docstring).
            output_keys: the output aliases wanted.
            timeout: seconds to wait for the result, or None.

        Returns:
            dict of output alias -> numpy array with this request's rows.

        Raises:
            ServingError: INVALID_ARGUMENT for unbatchable inputs, UNAVAILABLE when
                the queue is full, DEADLINE_EXCEEDED on timeout.
        """
        task = self.submit(servable, signature_name, inputs, output_keys)
        if task is None:
            # Nothing to batch (no inputs, only scalars, or zero rows): run it as it is.
            return servable.run(signature_name, inputs, output_keys)
        if timeout is None:
            finished = task.done.acquire()
        else:
            finished = task.done.acquire(timeout=min(max(timeout, 0.0), threading.TIMEOUT_MAX))
        if not finished:
            task.cancelled = True
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        return task.result()

    async def run_async(self, servable, signature_name, inputs, output_keys, timeout=None):
        """`run` for a coroutine on an asyncio event loop: awaits the batch, holds no thread.

        The batch thread hands each batch's results to the loop with one
        `call_soon_threadsafe`, however many of the loop's requests were in it.
        Cancelling the awaiting coroutine drops its task from the batch.
        """
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        task = self.submit(servable, signature_name, inputs, output_keys, self._sink(loop), future)
        if task is None:
            return await loop.run_in_executor(None, servable.run, signature_name, inputs, output_keys)
        expiry = None
        if timeout is not None:
            expiry = loop.call_later(max(timeout, 0.0), _expire, future)
        try:
            await future
        except BaseException:
            task.cancelled = True
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
        return task.result()

    def _sink(self, loop):
        sink = self._sinks.get(loop)
        if sink is None:
            with self._cv:
                sink = self._sinks.setdefault(loop, _LoopSink(loop))
        return sink

    def submit(self, servable, signature_name, inputs, output_keys, sink=None, waiter=None):
        """Queue one request's inputs without waiting for them: `run`'s first half.

        Args:
            servable, signature_name, inputs, output_keys: as for `run`.
            sink: None, and the returned task's `done` lock is released when its
                batch has run; or a callable that the batch thread calls once per
                batch with the list of that batch's tasks that gave this sink (an
                event loop's way to learn of many results with one wake-up).
            waiter: anything the sink needs to find the request again (stored as
                the task's `waiter`).

        Returns:
            The queued task (`task.result()` gives the outputs once it has run,
            `task.cancelled = True` drops it), or None when there is nothing to
            batch (no inputs, only scalars, or zero rows): the caller runs those itself.

        Raises:
            ServingError: as `run`, except DEADLINE_EXCEEDED.
        """
        size = None
        for array in inputs.values():
            if array.ndim == 0:
                continue  # a per-request parameter, not rows: it goes into the key below
            if size is None:
                size = array.shape[0]
            elif array.shape[0] != size:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "Batching Run() input tensors must have equal 0th-dimension size",
                )
        if not size:
            return None
        if size > self.options.max_batch_size:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"Task size {size} is larger than maximum input batch size "
                f"{self.options.max_batch_size}",
            )
        key = (
            id(servable),
            signature_name,
            tuple(output_keys),
            tuple((alias, a.dtype.str, a.shape[1:]) for alias, a in sorted(inputs.items())),
            tuple((alias, _scalar_key(a)) for alias, a in sorted(inputs.items()) if a.ndim == 0),
        )
        task = _Task(inputs, size, sink, waiter)
        with self._cv:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "Batch scheduler is stopped")
            queue = self._queues.get(key)
            if queue is None:
                queue = self._queues[key] = _Queue(servable, signature_name, tuple(output_keys))
            # A batch thread is woken only when there is something new for it: a
            # batch that closed, or a new open batch whose timeout it must start
            # timing. A task joining an open batch changes neither, and waking the
            # thread for each would cost a context switch per request.
            wake = False
            if queue.open_size + size > self.options.max_batch_size:
                if len(queue.closed) >= self.options.max_enqueued_batches:
                    raise ServingError(
                        grpc.StatusCode.UNAVAILABLE,
                        "The batch scheduling queue to which this task was submitted is full",
                    )
                queue.close_open()
                wake = True
            if not queue.open:
                queue.open_since = time.monotonic()
                wake = True
            queue.open.append(task)
            queue.open_size += size
            if queue.open_size == self.options.max_batch_size:
                queue.close_open()
                wake = True
            if wake:
                self._cv.notify()
        return task

    def stop(self):
        """Finish the batches already queued, then stop the threads."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        for thread in self._threads:
            thread.join()

    def forget(self, servable):
        """Drop the (empty) queues of an unloaded servable."""
        with self._cv:
            for key in [k for k, q in self._queues.items() if q.servable is servable]:
                queue = self._queues[key]
                if not queue.open and not queue.closed:
                    del self._queues[key]

    # The worker side.

    def _next_batch(self):
        """Under the lock: a closed batch, else an open one that has waited long enough."""
        now = time.monotonic()
        timeout = self.options.batch_timeout_micros / 1e6
        earliest = None
        for key, queue in self._queues.items():
            if queue.closed:
                return self._take(key, queue, queue.closed.popleft())
        for key, queue in self._queues.items():
            if queue.open:
                due = queue.open_since + timeout
                if due <= now or self._stopped:
                    batch = queue.open
                    queue.open, queue.open_size = [], 0
                    return self._take(key, queue, batch)
                earliest = due if earliest is None else min(earliest, due)
        return None, None, (None if earliest is None else earliest - now)

    def _take(self, key, queue, batch):
        # Under the lock, and the caller stops iterating the queues: drop a drained
        # queue (the next task for its key makes a new one).
        if not queue.open and not queue.closed:
            del self._queues[key]
        return queue, batch, None

    def _work(self):
        while True:
            with self._cv:
                while True:
                    queue, batch, wait = self._next_batch()
                    if batch is not None:
                        break
                    if self._stopped:
                        return
                    self._cv.wait(wait)
            self._process(queue, batch)

    def _process(self, queue, batch):
        tasks = [t for t in batch if not t.cancelled]
        if not tasks:
            return
        try:
            total = sum(t.size for t in tasks)
            padded = self._padded_size(total)
            merged = {}
            for alias in tasks[0].inputs:
                if tasks[0].inputs[alias].ndim == 0:
                    # Equal in every task of this queue (it is part of the key).
                    merged[alias] = tasks[0].inputs[alias]
                    continue
                parts = [t.inputs[alias] for t in tasks]
                if padded > total:
                    # TF Serving pads with copies of the first row of the first task.
                    first = parts[0][:1]
                    parts.append(np.repeat(first, padded - total, axis=0))
                merged[alias] = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
            if self._metrics is not None:
                self._metrics.record_batch(
                    queue.servable.name, queue.signature_name, total, padded - total
                )
            outputs = queue.servable.run(queue.signature_name, merged, queue.output_keys)
            for alias, value in outputs.items():
                if np.ndim(value) == 0:
                    raise ServingError(
                        grpc.StatusCode.INTERNAL, f"Batched output tensor {alias} has 0 dimensions"
                    )
                if value.shape[0] != padded:
                    raise ServingError(
                        grpc.StatusCode.INTERNAL,
                        f"Batched output tensor's 0th dimension does not equal the sum of the "
                        f"0th dimension sizes of the input tensors ({alias}: "
                        f"{value.shape[0]} != {padded})",
                    )
            start = 0
            for task in tasks:
                end = start + task.size
                task.outputs = {alias: value[start:end] for alias, value in outputs.items()}
                start = end
        except ServingError as e:
            for task in tasks:
                task.error = e
        except Exception as e:  # the model failed: every task in the batch learns why
            error = as_serving_error(e)
            for task in tasks:
                task.error = error
        finally:
            sinks = {}
            for task in tasks:
                if task.sink is None:
                    task.done.release()
                else:
                    sinks.setdefault(task.sink, []).append(task)
            for sink, finished in sinks.items():
                try:
                    sink(finished)
                except Exception:
                    log.exception("Delivering a batch's results failed")

    def _padded_size(self, total):
        for size in self.options.allowed_batch_sizes:
            if size >= total:
                return size
        return total


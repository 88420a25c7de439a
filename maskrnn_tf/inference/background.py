"""Background threads with bounded queues: read-ahead of an iterator, and a worker that runs jobs in order.

Both re-raise a failure of the background thread in the caller, so an error while decoding, computing flow
or writing stops the run instead of being lost.
"""
from __future__ import annotations

import queue
import threading
from typing import Callable, Iterable, Iterator, Optional, TypeVar

T = TypeVar("T")


class _Failure:
    """Carries an exception from the producer thread to the consumer."""

    def __init__(self, error: BaseException):
        self.error = error


_END = object()


def prefetch(items: Iterable[T], depth: int = 4) -> Iterator[T]:
    """Iterates `items` on a background thread, at most `depth` items ahead of the consumer.

    Exceptions raised by the producer are re-raised in the consumer; stopping early (break, exception,
    garbage collection of the generator) stops the producer.
    """
    if depth <= 0:
        yield from items
        return
    buffer: "queue.Queue" = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
            put(_END)
        except BaseException as error:  # noqa: BLE001 -- handed to the consumer, which re-raises it
            put(_Failure(error))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is _END:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join(timeout=5.0)


class BackgroundWorker:
    """Runs callables in submission order on one thread, at most `depth` pending (submit blocks beyond).

    `close()` waits for the pending jobs and re-raises the first failure; after a failure further submits
    raise it at once.
    """

    def __init__(self, depth: int = 8, name: str = "worker"):
        self._jobs: "queue.Queue" = queue.Queue(maxsize=max(1, depth))
        self._error: Optional[BaseException] = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is _END:
                return
            if self._error is None:
                try:
                    job()
                except BaseException as error:  # noqa: BLE001 -- re-raised in the submitting thread
                    self._error = error

    def submit(self, job: Callable[[], None]) -> None:
        """Queues `job`; raises the failure of an earlier job if there was one."""
        if self._error is not None:
            raise self._error
        self._jobs.put(job)

    def close(self) -> None:
        """Waits for every queued job; raises the first failure."""
        if self._thread.is_alive():
            self._jobs.put(_END)
            self._thread.join()
        if self._error is not None:
            raise self._error

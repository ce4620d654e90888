"""The request log: every served request becomes a served_requests row, written off the
request path by one background thread in batches (one transaction per batch).

A batch is written when ``batch_rows`` requests are waiting or ``flush_seconds`` after the
first of them arrived, whichever comes first; ``close()`` writes whatever is left. A batch the
database refuses (e.g. locked for longer than the busy timeout) is kept and retried.
"""

import json
import logging
import queue
import threading
import time

logger = logging.getLogger(__name__)
_STOP = object()
_CLOSE_ATTEMPTS = 3


def _json_or_none(value):
    return None if value is None else json.dumps(value, default=str)


class RequestLog:
    def __init__(self, store, *, flush_seconds=0.05, batch_rows=500):
        self._store = store
        self._flush_seconds = flush_seconds
        self._batch_rows = batch_rows
        self._queue = queue.SimpleQueue()
        self.rows_written = 0
        self.batches_written = 0
        self._thread = threading.Thread(target=self._run, name="mlops-request-log", daemon=True)
        self._thread.start()

    def record(self, row):
        """Queue one row (``inputs``/``outputs`` as Python objects: JSON is made on the writer thread)."""
        self._queue.put(row)

    def pending(self):
        return self._queue.qsize()

    def close(self):
        """Write every queued row, then stop the writer."""
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self):
        batch, stopping = [], False
        while not stopping:
            item = self._queue.get()  # idle until a request arrives: no wake-ups while nothing is served
            deadline = time.monotonic() + self._flush_seconds
            while item is not _STOP:
                batch.append(item)
                remaining = deadline - time.monotonic()
                if len(batch) >= self._batch_rows or remaining <= 0:
                    break
                try:
                    item = self._queue.get(timeout=remaining)
                except queue.Empty:
                    break
            stopping = item is _STOP
            attempts = _CLOSE_ATTEMPTS if stopping else 1
            while batch and attempts:
                attempts -= 1
                if self._write(batch):
                    batch = []
                elif not stopping:
                    time.sleep(self._flush_seconds)  # kept for the next round; give the database a moment
        if batch:
            logger.error("request log: %d served requests could not be recorded", len(batch))

    def _write(self, batch):
        rows = [{**row, "inputs": _json_or_none(row["inputs"]), "outputs": _json_or_none(row["outputs"])}
                for row in batch]
        try:
            self._store.record_served_requests(rows)
        except Exception as error:  # the database's error, whatever the driver: keep the rows, retry
            logger.warning("request log: writing %d rows failed (%s); retrying", len(rows),
                           str(error).splitlines()[0])
            return False
        self.rows_written += len(rows)
        self.batches_written += 1
        return True

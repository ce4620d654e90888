"""A lean HTTP/1.1 load client: asyncio, raw keep-alive connections, nothing between the socket
and the clock. Shared by ``tests/test_serving.py`` and ``benchmarks/bench_serving.py``.

``load`` sends exactly ``requests`` requests over ``concurrency`` connections (each sends its
next request when the previous answer is complete) and stops by itself.
"""

import asyncio
import time


def request_bytes(method, path, body, token, host):
    head = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Authorization: Bearer {token}"]
    if body is not None:
        head += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")


async def _read_response(reader):
    """``(status, body)`` of one response with a Content-Length (what uvicorn sends here)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def load(host, port, payloads, *, requests, concurrency):
    """Send ``payloads`` (from ``request_bytes``) in turn, ``requests`` in all:
    ``{"latencies": [seconds per request], "errors": n, "seconds": wall time, "statuses": {code: n}}``."""
    sent = [0]
    latencies, statuses = [], {}

    async def connection():
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while sent[0] < requests:
                payload = payloads[sent[0] % len(payloads)]
                sent[0] += 1
                started = time.perf_counter()
                writer.write(payload)
                status, _ = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    errors = sum(count for status, count in statuses.items() if status != 200)
    return {"latencies": latencies, "errors": errors, "seconds": seconds, "statuses": statuses}


def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]

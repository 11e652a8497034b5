"""Whether a download host answers, told within seconds (libraries retry for minutes)."""

from __future__ import annotations

import concurrent.futures
import os
import socket


def reachable(address: tuple[str, int], timeout: float = 3.0) -> bool:
    """True if `address` (host, port) answers a TCP connect within `timeout` seconds;
    always False with ZOO_OFFLINE=1."""
    if os.environ.get("ZOO_OFFLINE") == "1":
        return False

    def connect():
        with socket.create_connection(address, timeout=timeout):
            return True

    # DNS resolution ignores socket timeouts; bound the whole attempt.
    pool = concurrent.futures.ThreadPoolExecutor(1)
    try:
        return pool.submit(connect).result(timeout=timeout + 1)
    except Exception:
        return False
    finally:
        pool.shutdown(wait=False)

"""Hostile clients against the REST API: each is refused or outlasted, and the next good
request still answers.

The server is a real `serving.ModelServer` on the toy model (tests/rest_models.py).
Requests that an HTTP client library would refuse to send (two Content-Lengths, a
broken chunk, headers a byte at a time) go over raw sockets.
"""

import http.client
import socket
import threading
import time
import types

import pytest

import rest_models as rm
from rest_models import call, good_request_works
from serving import rest

PREDICT = "/v1/models/toy:predict"


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return rm.save_toy(tmp_path_factory.mktemp("hostile-models"))


@pytest.fixture(scope="module")
def model_server(toy_dir):
    srv = rm.start_server(toy_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def server(model_server):
    return types.SimpleNamespace(port=model_server.rest_port)


def exchange(server, data: bytes, timeout: float = 10) -> tuple[int, bytes]:
    """Sends raw bytes on a new connection: (the answer's status, the whole answer)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=timeout) as s:
        s.sendall(data)
        return read_answer(s)


def read_answer(s: socket.socket) -> tuple[int, bytes]:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = s.recv(65536)
        if not chunk:
            break
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = s.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(head.split(b" ")[1]), answer


def post(headers: str, body: bytes = b"") -> bytes:
    return f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode() + body


# --- JSON that nests deeper than any tensor -------------------------------------


def _nest(depth: int, form: str) -> str:
    """A :predict body whose JSON nests `depth` levels deep, the outer object included."""
    arrays = depth - 1
    if form == "instances":
        return '{"instances": ' + "[" * arrays + "1.0" + "]" * arrays + "}"
    if form == "inputs":
        return '{"inputs": {"image": ' + "[" * (arrays - 1) + "1.0" + "]" * (arrays - 1) + "}}"
    # ragged: a shallow first row, the depth in the second
    return '{"instances": [[1.0], ' + "[" * (arrays - 1) + "1.0" + "]" * (arrays - 1) + "]}"


@pytest.mark.parametrize("form", ["instances", "inputs", "ragged"])
@pytest.mark.parametrize("depth", [33, 34, 64, 99, 5000])
def test_deeply_nested_json_is_a_400(server, toy_dir, depth, form):
    status, doc = call(server, "POST", PREDICT, _nest(depth, form))
    assert status == 400, doc
    assert set(doc) == {"error"}
    good_request_works(server, toy_dir)


def test_more_than_32_dimensions_is_invalid_argument_not_a_crash(server):
    status, doc = call(server, "POST", PREDICT, _nest(35, "instances"))  # 34 dims
    assert status == 400 and "over the limit of 32" in doc["error"], doc


# --- framing -----------------------------------------------------------------------


@pytest.mark.parametrize("request_bytes,code", [
    (post("Content-Length: 2\r\nContent-Length: 3\r\n", b"{}x"), 400),
    (post("Content-Length: 2\r\nTransfer-Encoding: chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"), 400),
    (post("Content-Length: -1\r\n"), 400),
    (post("Transfer-Encoding: gzip, chunked\r\n", b"2\r\n{}\r\n0\r\n\r\n"), 501),
    (f"POST {PREDICT} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n".encode(), 400),
], ids=["two-content-lengths", "length-and-chunked", "negative-length", "gzip-coding", "chunked-in-http1.0"])
def test_ambiguous_framing_is_refused(server, toy_dir, request_bytes, code):
    status, answer = exchange(server, request_bytes)
    assert status == code, answer
    assert b'{"error": ' in answer
    good_request_works(server, toy_dir)


@pytest.mark.parametrize("chunks", [
    b"zz\r\n{}\r\n0\r\n\r\n",  # a size that is not hex
    b"2\r\n{}}}}\r\n0\r\n\r\n",  # more data than the size said
    b"2\r\n{}\r\n-1\r\n\r\n",  # a negative size
], ids=["not-hex", "overlong-chunk", "negative-size"])
def test_a_malformed_chunked_body_is_a_400(server, toy_dir, chunks):
    status, answer = exchange(server, post("Transfer-Encoding: chunked\r\n", chunks))
    assert status == 400, answer
    good_request_works(server, toy_dir)


@pytest.mark.parametrize("expect", [False, True])
def test_a_length_over_the_limit_is_refused_before_the_body_is_sent(server, toy_dir, expect):
    headers = f"Content-Length: {1 << 30}\r\n" + ("Expect: 100-continue\r\n" if expect else "")
    status, answer = exchange(server, post(headers))  # not one byte of the body
    assert status == 413, answer
    assert b"larger than the limit of" in answer and b"Connection: close" in answer
    good_request_works(server, toy_dir)


# --- many connections, slow clients -------------------------------------------------


def _closed_by_server(conn: http.client.HTTPConnection) -> bool:
    conn.sock.setblocking(False)
    try:
        return conn.sock.recv(1) == b""
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


def test_300_idle_keep_alive_connections_cost_no_threads_and_block_nobody(server, toy_dir):
    good_request_works(server, toy_dir)  # the threads a request needs exist from here on
    threads = threading.active_count()
    idle = []
    try:
        for _ in range(300):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            status, _ = call(server, "GET", "/v1/models/toy", conn=conn)  # then left open, idle
            assert status == 200
            idle.append(conn)
        start = time.monotonic()
        good_request_works(server, toy_dir)
        assert time.monotonic() - start < 2
        assert threading.active_count() <= threads + 3, (threads, threading.active_count())
        # The bound: the server closed the connections idle the longest to stay under its cap.
        closed = sum(_closed_by_server(conn) for conn in idle)
        assert closed >= 300 - rest.DEFAULT_MAX_CONNECTIONS, closed
    finally:
        for conn in idle:
            conn.close()


def _trickle(port: int, head: bytes, stop: threading.Event, gap: float = 0.05) -> list:
    """Sends `head` at once, then one byte per `gap` s until `stop`; returns [how it ended]."""
    ended = []

    def run():
        with socket.create_connection(("127.0.0.1", port)) as s:
            try:
                s.sendall(head)
                while not stop.wait(gap):
                    s.sendall(b"a")
                ended.append("still open")
            except OSError:
                ended.append("closed by the server")

    threading.Thread(target=run, daemon=True).start()
    return ended


def test_slow_clients_do_not_block_others(server, toy_dir):
    stop = threading.Event()
    headers = _trickle(server.port, f"POST {PREDICT} HTTP/1.1\r\nHost: x\r\nX-Slow: ".encode(), stop)
    body = _trickle(server.port, post("Content-Length: 100000\r\n", b'{"instances": ['), stop)
    try:
        time.sleep(0.2)
        for _ in range(5):
            start = time.monotonic()
            good_request_works(server, toy_dir)
            assert time.monotonic() - start < 1
    finally:
        stop.set()
    time.sleep(0.1)
    assert headers == body == ["still open"]


def test_a_client_that_never_finishes_its_headers_is_closed_after_the_idle_timeout(model_server, toy_dir):
    front = rest.start_rest_server(model_server.core, "127.0.0.1", 0, idle_timeout=0.5)
    try:
        stop = threading.Event()
        ended = _trickle(front.port, f"POST {PREDICT} HTTP/1.1\r\nX-Slow: ".encode(), stop, gap=0.1)
        time.sleep(1.5)
        stop.set()
        time.sleep(0.2)
        assert ended == ["closed by the server"]
        good_request_works(front, toy_dir)
    finally:
        front.stop()

"""TF Serving's REST API (`--rest_api_port`) over the transport-independent core, on aiohttp.

The routes, JSON shapes, error texts and HTTP status codes follow TF Serving's
`http_rest_api_handler.cc` (the JSON itself is `serving.json_tensors`), so that a
script written for `tensorflow_model_server` works unchanged:

    POST /v1/models/NAME[/versions/V|/labels/L]:predict    {"instances": [...]} or {"inputs": ...}
    POST /v1/models/NAME[/versions/V|/labels/L]:classify   {"examples": [...]}
    POST /v1/models/NAME[/versions/V|/labels/L]:regress    {"examples": [...]}
    GET  /v1/models/NAME[/versions/V|/labels/L]            model status
    GET  /v1/models/NAME[/versions/V|/labels/L]/metadata   signature defs

Errors come back as `{"error": "..."}` with the HTTP status TF Serving gives the
error's code (`HTTP_STATUS`). The server is an aiohttp application on an event loop:
with batching, the asyncio gRPC server's (one loop serves both APIs), otherwise one
of its own in one thread. A connection costs a socket, not a thread, and model runs
go to the core's coroutines, which await them on a thread pool (or a batch).

    server = start_rest_server(core, "localhost", 0, timeout_ms=30000)
    print(server.port)
    server.stop()
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import socket
import threading
import time
import urllib.parse
from concurrent import futures
from typing import TYPE_CHECKING, Awaitable, Callable

import grpc
import tensorflow as tf
from aiohttp import web
from tensorflow_serving.apis import (
    classification_pb2,
    get_model_metadata_pb2,
    get_model_status_pb2,
    model_pb2,
    predict_pb2,
    regression_pb2,
)

from serving import json_tensors
from serving.errors import ServingError, code_from_int

if TYPE_CHECKING:
    from serving.core import ServerCore

__all__ = ["RestServer", "start_rest_server", "HTTP_STATUS", "http_error"]

logger = logging.getLogger(__name__)

# Bodies above this are refused with 413 before they are read. TF Serving has no
# limit of its own; a JSON body grows about three times once parsed in Python.
DEFAULT_MAX_BODY_BYTES = 64 << 20
# Deeper JSON than any real tensor needs is refused before it is parsed.
DEFAULT_MAX_JSON_DEPTH = 100
# Connections open at once. An idle one costs a socket and a few KB, no thread; past
# the cap the connection idle the longest is closed to make room, and when every one
# is busy a new one is answered 503 (UNAVAILABLE, which clients retry). Busy
# connections are what the cap bounds: each may hold a body of up to max_body_bytes.
DEFAULT_MAX_CONNECTIONS = 128
# Seconds a connection may wait for its next request (or take to send the headers of
# one) before it is closed.
DEFAULT_IDLE_TIMEOUT_S = 30.0
# Seconds a request's body may take to arrive once its headers have (then 408). This
# also ends a chunked body with a chunk that fails to parse in a later packet than the
# headers: aiohttp's C parser (3.14) leaves the read in progress waiting for more.
REQUEST_READ_TIMEOUT_S = 60.0
# After refusing a body it has not read (413), the server drains what the client is
# still sending for up to this long before closing: closing a socket with unread data
# sends a reset, which can destroy the answer before the client reads it.
_LINGER_S = 2.0
# Bodies up to this size are converted to and from JSON on the event loop, where a
# thread hop would cost more than the work; larger ones on a thread, so that one big
# request does not stall every other connection.
_INLINE_JSON_BYTES = 64 << 10
_SERVER_HEADER = "zoo-model-server"

# TF Serving's http_server.cc ToHTTPStatusCode.
HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}

_INT64_MAX = 2**63 - 1
_DEFAULT_SIGNATURE = "serving_default"


def _invalid(message: str) -> ServingError:
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def http_error(exc: BaseException) -> tuple[int, str]:
    """The HTTP status and `{"error": ...}` body TF Serving answers for an error.

    A ServingError or TensorFlow error keeps its code and text; anything else is a
    bug here, answered 500 INTERNAL.

    Example:
        >>> http_error(ServingError(grpc.StatusCode.NOT_FOUND, "no model"))
        (404, '{"error": "no model"}')
    """
    if isinstance(exc, ServingError):
        code, message = exc.code, exc.message
    elif isinstance(exc, tf.errors.OpError):
        code, message = code_from_int(exc.error_code), exc.message
    else:
        code, message = grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}"
    return HTTP_STATUS.get(code, 500), json.dumps({"error": message}, ensure_ascii=False)


def _reply(status: int, text: str | bytes, content_type: str = "application/json") -> web.Response:
    body = text.encode("utf-8") if isinstance(text, str) else text
    return web.Response(status=status, body=body,
                        headers={"Content-Type": content_type, "Server": _SERVER_HEADER})


def _refuse(status: int, message: str) -> web.Response:
    """An error answered before the request's body was read: the connection then closes."""
    response = _reply(status, json.dumps({"error": message}, ensure_ascii=False))
    response.force_close()
    return response


# ---------------------------------------------------------------------------
# The API: one handler per route
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Call:
    """What a handler gets: the route's match, the body, and the REST deadline
    (time.monotonic() seconds, or None for none)."""

    match: re.Match
    body: bytes
    deadline: float | None


_Handler = Callable[["_RestApi", _Call], Awaitable[web.Response]]


class _RestApi:
    """TF Serving's HttpRestApiHandler: one coroutine per route, each calling the core.

    The REST deadline (--rest_api_timeout_in_ms) starts when the request's body has
    been read; whatever of it is left when the model is called goes to the core as
    `timeout`, which answers DEADLINE_EXCEEDED (HTTP 504) once the run outlasts it.
    """

    def __init__(self, core: ServerCore, timeout_ms: int | None, max_json_depth: int, metrics_fn,
                 executor: futures.Executor):
        self._core = core
        self._executor = executor  # large JSON conversions
        self._timeout = timeout_ms / 1000.0 if timeout_ms and timeout_ms > 0 else None
        self._max_depth = max_json_depth
        self._metrics_fn = metrics_fn

    async def _convert(self, size: int, fn, *args):
        """fn(*args), on a thread when `size` (bytes of JSON in or out) is large."""
        if size <= _INLINE_JSON_BYTES:
            return fn(*args)
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def deadline(self) -> float | None:
        """The deadline of a request whose body has just been read (None: no deadline)."""
        return time.monotonic() + self._timeout if self._timeout is not None else None

    async def predict(self, call: _Call) -> web.Response:
        spec = _model_spec(call.match)
        request, row_format = await self._convert(len(call.body), self._predict_request, spec, call.body)
        response = await self._core.predict_async(
            request, timeout=self._time_left(call.deadline), entrypoint="REST")
        return _reply(200, await self._convert(response.ByteSize(), json_tensors.predict_json,
                                          response.outputs, row_format))

    async def classify(self, call: _Call) -> web.Response:
        request = classification_pb2.ClassificationRequest(model_spec=_model_spec(call.match))
        await self._convert(len(call.body), self._fill_examples, request, call.body)
        response = await self._core.classify_async(
            request, timeout=self._time_left(call.deadline), entrypoint="REST")
        return _reply(200, json_tensors.classification_json(response.result))

    async def regress(self, call: _Call) -> web.Response:
        request = regression_pb2.RegressionRequest(model_spec=_model_spec(call.match))
        await self._convert(len(call.body), self._fill_examples, request, call.body)
        response = await self._core.regress_async(
            request, timeout=self._time_left(call.deadline), entrypoint="REST")
        return _reply(200, json_tensors.regression_json(response.result))

    async def status(self, call: _Call) -> web.Response:
        request = get_model_status_pb2.GetModelStatusRequest(model_spec=_model_spec(call.match))
        response = self._core.get_model_status(request, entrypoint="REST")
        return _reply(200, json_tensors.model_status_json(response))

    async def metadata(self, call: _Call) -> web.Response:
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            model_spec=_model_spec(call.match), metadata_field=["signature_def"])
        response = self._core.get_model_metadata(request, entrypoint="REST")
        return _reply(200, json_tensors.model_metadata_json(response))

    async def metrics(self, call: _Call) -> web.Response:
        content_type, payload = self._metrics_fn()
        return _reply(200, payload, content_type)

    def _time_left(self, deadline: float | None) -> float | None:
        """Seconds left of the request's deadline (None: no deadline), for the core's `timeout`."""
        if deadline is None:
            return None
        left = deadline - time.monotonic()
        if left <= 0:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"Deadline exceeded: the request ran longer than the REST API timeout of "
                               f"{self._timeout * 1000:.0f} ms (--rest_api_timeout_in_ms)")
        return left

    def _predict_request(self, spec, body: bytes) -> tuple[predict_pb2.PredictRequest, bool]:
        doc = json_tensors.parse_json(body, self._max_depth)
        request = predict_pb2.PredictRequest()
        request.model_spec.CopyFrom(spec)
        request.model_spec.signature_name = json_tensors.signature_name(doc)
        signature = self._signature(spec, request.model_spec.signature_name)
        if not signature.inputs:
            raise _invalid("Failed to get input map for signature: "
                           + (request.model_spec.signature_name or "DEFAULT"))
        inputs, row_format = json_tensors.predict_inputs(doc, signature.inputs, signature.defaults)
        for name, tensor in inputs.items():
            request.inputs[name].CopyFrom(tensor)
        return request, row_format

    def _fill_examples(self, request, body: bytes) -> None:
        json_tensors.fill_examples(json_tensors.parse_json(body, self._max_depth), request)

    def _signature(self, spec, signature_name: str):
        """The SignatureDef whose inputs' dtypes type the JSON values (http_rest_api_handler.cc
        GetInfoMap) and whose defaults may be left out of the body."""
        name = signature_name or _DEFAULT_SIGNATURE
        lookup = model_pb2.ModelSpec()
        lookup.CopyFrom(spec)
        lookup.signature_name = name
        try:
            return self._core.resolve_signature(lookup)[1]
        except ServingError as e:
            if e.code == grpc.StatusCode.FAILED_PRECONDITION:  # no such signature
                raise _invalid(f'Serving signature name: "{name}" not found in signature def') from None
            raise




def _model_spec(match: re.Match) -> model_pb2.ModelSpec:
    name, version, label = match["name"], match["version"], match["label"]
    if not name:
        raise _invalid("Missing model name in request.")
    spec = model_pb2.ModelSpec(name=urllib.parse.unquote(name))
    if version:
        if int(version) > _INT64_MAX:
            raise _invalid(f"Failed to convert version: {version} to numeric.")
        spec.version.value = int(version)
    if label:
        spec.version_label = urllib.parse.unquote(label)
    return spec


# ---------------------------------------------------------------------------
# The route table
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _Route:
    method: str
    pattern: re.Pattern
    handler: _Handler


def _api_route(method: str, pattern: str, handler: _Handler) -> _Route:
    # TF Serving matches its routes with case-insensitive RE2 patterns ("(?i)..."), which
    # aiohttp's router cannot express (nor the optional version/label part): the table
    # is matched here, behind one aiohttp route that takes every request.
    return _Route(method, re.compile(pattern, re.IGNORECASE), handler)


_VERSION_OR_LABEL = r"(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
_MODEL = r"/v1/models/(?P<name>[^/:]+)" + _VERSION_OR_LABEL
# GET also matches a missing name, to answer "Missing model name in request." as TF Serving does.
_MODEL_OR_NONE = r"/v1/models(?:/(?P<name>[^/:]+))?" + _VERSION_OR_LABEL

# (method, path, handler), tried in order. A new route is one entry and its handler.
_ROUTES = (
    _api_route("POST", _MODEL + ":predict", _RestApi.predict),
    _api_route("POST", _MODEL + ":classify", _RestApi.classify),
    _api_route("POST", _MODEL + ":regress", _RestApi.regress),
    _api_route("GET", _MODEL_OR_NONE, _RestApi.status),
    _api_route("GET", _MODEL_OR_NONE + "/metadata", _RestApi.metadata),
)
# Every other request under /v1/ is TF Serving's "Malformed request" (400), not 404.
_API_PATH_RE = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)


# ---------------------------------------------------------------------------
# HTTP: aiohttp, with the limits of a server that faces any client
# ---------------------------------------------------------------------------


class _Connection(web.RequestHandler):
    """aiohttp's protocol for one connection, which also knows since when it has been
    idle (None while it answers a request): the connection cap closes the idlest."""

    __slots__ = ("idle_since", "_open", "requests")

    def __init__(self, open_connections: set, requests: set, manager: web.Server, *, loop, **kwargs):
        super().__init__(manager, loop=loop, **kwargs)
        self.idle_since = loop.time()
        self._open = open_connections
        self.requests = requests  # the tasks answering a request, on any connection

    def connection_made(self, transport):
        self._open.add(self)
        super().connection_made(transport)

    def connection_lost(self, exc):
        self._open.discard(self)
        super().connection_lost(exc)

    def handle_error(self, request, status=500, exc=None, message=None):
        if status >= 500:
            return super().handle_error(request, status, exc, message)
        # A request aiohttp's parser refused (two Content-Lengths, a malformed chunk,
        # oversized headers): the client's fault, so no traceback in the server's log,
        # and TF Serving's error body rather than aiohttp's text.
        reason = str(message or exc or "bad request").strip().splitlines()[0].rstrip(":")
        logger.debug("Malformed HTTP request from %s: %s", request.remote, reason)
        return _refuse(status, f"Malformed HTTP request: {reason}")


class _Refused(asyncio.Protocol):
    """A connection past the cap while every open one is busy: 503, then closed."""

    _ANSWER = json.dumps({"error": "Too many connections: every connection is busy; retry"}).encode()
    _RESPONSE = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(_ANSWER), _ANSWER))

    def connection_made(self, transport):
        transport.write(self._RESPONSE)
        transport.close()


def _framing_error(request: web.BaseRequest) -> web.Response | None:
    """The transfer codings aiohttp's parser lets through but this server cannot honour."""
    codings = [c.strip().lower() for v in request.headers.getall("Transfer-Encoding", [])
               for c in v.split(",") if c.strip()]
    if not codings:
        return None
    # RFC 9112 §6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing (two
    # parsers may split it two ways: request smuggling).
    if request.version < (1, 1):
        return _refuse(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
    unknown = [c for c in codings if c != "chunked"]
    if unknown:
        return _refuse(501, f"Transfer-Encoding {unknown[0]} is not supported")
    return None


class _App:
    """The aiohttp application: limits first, then the route table."""

    def __init__(self, api: _RestApi, routes: tuple[_Route, ...], max_body_bytes: int):
        self._api = api
        self._routes = routes
        self._max_body_bytes = max_body_bytes
        self.stopping = False

    def build(self) -> web.Application:
        # client_max_size makes aiohttp count a body as it reads it (a chunked one has no
        # length to check first) and stop past the limit.
        app = web.Application(client_max_size=self._max_body_bytes)
        app.router.add_route("*", "/{path:.*}", self._serve, expect_handler=self._expect)
        return app

    def _too_large(self, length: int | None) -> web.Response | None:
        if length is None or length <= self._max_body_bytes:
            return None
        return _refuse(413, f"Request body of {length} bytes is larger than the limit of "
                            f"{self._max_body_bytes} bytes")

    async def _expect(self, request: web.Request) -> web.Response | None:
        # Expect: 100-continue asks before sending the body: refuse it now if it is too big.
        refusal = _framing_error(request) or self._too_large(request.content_length)
        if refusal is not None:
            return refusal
        if request.headers.get("Expect", "").lower() != "100-continue":
            return _refuse(417, f"Unknown Expect: {request.headers['Expect']}")
        if request.version >= (1, 1):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            # An interim answer, not the response: aiohttp judges by this count whether
            # a response has begun (and an error could no longer be answered).
            request.writer.output_size = 0
        return None

    async def _serve(self, request: web.Request) -> web.Response:
        connection = request.protocol
        connection.idle_since = None
        task = asyncio.current_task()
        connection.requests.add(task)
        try:
            response = await self._answer(request)
        finally:
            connection.requests.discard(task)
            connection.idle_since = asyncio.get_running_loop().time()
        if self.stopping:
            response.force_close()
        return response

    async def _answer(self, request: web.Request) -> web.Response:
        # aiohttp has parsed the headers; the body is read only once it is known to fit.
        refusal = _framing_error(request) or self._too_large(request.content_length)
        if refusal is not None:
            return refusal
        try:
            async with asyncio.timeout(REQUEST_READ_TIMEOUT_S):
                body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(413, f"Request body of more than {self._max_body_bytes} bytes is larger "
                                f"than the limit of {self._max_body_bytes} bytes")
        except TimeoutError:
            return _refuse(408, f"Request body not received within {REQUEST_READ_TIMEOUT_S:g} s")
        except (web.RequestPayloadError, ConnectionError) as e:
            # A chunk that does not parse, or a client gone mid-body.
            return _refuse(400, f"Malformed request body: {e}")

        method, path = request.method, request.rel_url.raw_path
        route, match = self._route(method, path)
        if route is None:
            if _API_PATH_RE.fullmatch(path):
                return _reply(*http_error(_invalid(f"Malformed request: {method} {path}")))
            if match is not None:  # the path is served, but not to this method
                return _reply(405, json.dumps({"error": f"{method} not allowed on {path}"}))
            return _reply(404, json.dumps({"error": f"Not found: {method} {path}"}))
        try:
            return await route.handler(self._api, _Call(match, body, self._api.deadline()))
        except Exception as e:  # noqa: BLE001 - every error becomes a JSON answer
            status, text = http_error(e)
            if status == 500:
                logger.exception("REST %s %s failed", method, path)
            return _reply(status, text)

    def _route(self, method: str, path: str) -> tuple[_Route | None, re.Match | None]:
        """The route for (method, path), or (None, a match under another method, if any)."""
        other = None
        for route in self._routes:
            match = route.pattern.fullmatch(path)
            if match is not None:
                if route.method == method:
                    return route, match
                other = other or match
        return None, other


class RestServer:
    """A running REST server: `.port` (the bound one), `.url`, `.stop()`.

    The aiohttp application runs on `loop` when given (the asyncio gRPC server's, so
    that one event loop serves both APIs), else on an event loop of its own in one
    daemon thread, whose default executor (model runs that are not batched) is then
    `executor`. Large JSON conversions go to `executor` either way. `held`, with a
    shared loop, is set once this server has stopped (the loop's owner keeps it
    running until then).
    """

    def __init__(self, app: _App, sock: socket.socket, *, max_connections: int, idle_timeout: float,
                 executor: futures.ThreadPoolExecutor, loop: asyncio.AbstractEventLoop | None = None,
                 held: threading.Event | None = None):
        self._app = app
        self._max_connections = max_connections
        self._open: set[_Connection] = set()
        self._requests: set[asyncio.Task] = set()
        self._handler_options = dict(
            keepalive_timeout=idle_timeout, lingering_time=_LINGER_S, access_log=None,
            # A body is refused, not decompressed (as before): gzip would need its own limit.
            auto_decompress=False)
        self.host, self.port = sock.getsockname()[:2]
        self._held = held
        self._executor = executor
        self._thread = None
        if loop is None:
            self._loop = asyncio.new_event_loop()
            self._loop.set_default_executor(executor)
            self._thread = threading.Thread(target=self._loop.run_forever, name=f"rest-api:{self.port}",
                                            daemon=True)
            self._thread.start()
        else:
            self._loop = loop
        self._runner = self._listener = None
        self._stopped = False
        try:
            asyncio.run_coroutine_threadsafe(self._start(sock), self._loop).result()
        except BaseException:
            sock.close()
            self._close_loop()
            raise

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def _start(self, sock: socket.socket) -> None:
        self._runner = web.AppRunner(self._app.build(), handle_signals=False)
        await self._runner.setup()
        # aiohttp's sites take no connection cap, so the listener is asyncio's own,
        # handing each connection to `_accept`.
        self._listener = await self._loop.create_server(self._accept, sock=sock, backlog=1024)

    def _accept(self) -> asyncio.Protocol:
        if len(self._open) >= self._max_connections:
            idle = [c for c in self._open if c.idle_since is not None]
            if not idle:
                return _Refused()
            # A client reconnects, as it must for any keep-alive connection a server closes.
            idlest = min(idle, key=lambda c: c.idle_since)
            self._open.discard(idlest)
            idlest.force_close()
        return _Connection(self._open, self._requests, self._runner.server, loop=self._loop,
                           **self._handler_options)

    def stop(self, grace: float | None = None) -> None:
        """Stops accepting (the port closes), lets requests in flight finish, then closes
        every connection.

        Args:
            grace: seconds requests in flight get to finish before they are cancelled
                (None: all the time they need).
        """
        if self._stopped:
            return
        self._stopped = True
        try:
            asyncio.run_coroutine_threadsafe(self._stop(grace), self._loop).result()
        finally:
            self._close_loop()

    async def _stop(self, grace: float | None) -> None:
        self._app.stopping = True  # answers from now on say "Connection: close"
        self._listener.close()
        server = self._runner.server
        server.pre_shutdown()  # idle connections close now, busy ones after their answer
        await server.shutdown(grace)
        await self._runner.cleanup()
        await self._listener.wait_closed()
        # What is left (a request whose client closed the connection mid-request, which
        # aiohttp's shutdown no longer sees) has nobody to answer. Only this server's
        # requests: the loop may be the gRPC server's too.
        leftovers = [t for t in self._requests if not t.done()]
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)

    def _close_loop(self) -> None:
        if self._thread is None:  # the loop is shared: its owner closes it
            if self._held is not None:
                self._held.set()
        else:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=5)
            if not self._thread.is_alive():
                self._loop.close()
        # A model run that outlived its request's deadline finishes on its own.
        self._executor.shutdown(wait=False)


def _bind(host: str, port: int, reuse_port: bool) -> socket.socket:
    # One socket on the one address `host` names (as a plain HTTP server binds), so that
    # port 0 gives one port even where "localhost" is both 127.0.0.1 and ::1.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:  # the worker processes of one server share the port (serving.workers)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def start_rest_server(core: ServerCore, host: str, port: int, timeout_ms: int | None = 30000,
                      metrics_path: str | None = None, metrics_fn=None, *,
                      max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
                      max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
                      max_connections: int = DEFAULT_MAX_CONNECTIONS,
                      idle_timeout: float = DEFAULT_IDLE_TIMEOUT_S,
                      grpc_server=None, reuse_port: bool = False) -> RestServer:
    """Serves TF Serving's REST API for `core` on host:port (port 0 picks a free one).

    Args:
        core: the `serving.core.ServerCore` to serve.
        host, port: where to listen.
        timeout_ms: --rest_api_timeout_in_ms, the deadline of a request from the moment
            its body has been read; the core gets what is left of it as `timeout`, and a
            request that outlasts it answers 504 DEADLINE_EXCEEDED. 0 or None: no limit.
        metrics_path, metrics_fn: serve `metrics_fn() -> (content_type, body)` at
            this path, GET only (the monitoring config's Prometheus path); without a
            metrics_fn, the core's `metrics_exposition`.
        max_body_bytes: larger bodies are refused with 413 (a declared length before
            the body is read, a chunked one as it is read).
        max_json_depth: deeper JSON is refused with 400 before it is parsed.
        max_connections: connections open at once; past it the connection idle the
            longest is closed, or, when every one is busy, the new one is answered 503.
        idle_timeout: seconds a connection may wait for its next request, or take to
            send a request's headers, before it is closed.
        grpc_server: the asyncio gRPC server (`serving.grpc_server.AsyncioServer`,
            which serves with batching on): REST then runs on its event loop, and the
            loop stays up until REST has stopped. None: REST runs a loop of its own.
        reuse_port: bind with SO_REUSEPORT, sharing the port with the other worker
            processes of the same server.

    Example:
        server = start_rest_server(core, "localhost", 8501, timeout_ms=30000)
        ...
        server.stop()
    """
    if max_connections < 1:
        raise ValueError(f"max_connections must be at least 1, not {max_connections}")
    if not idle_timeout > 0:
        raise ValueError(f"idle_timeout must be positive, not {idle_timeout}")
    routes = _ROUTES
    if metrics_path:
        metrics = _Route("GET", re.compile(re.escape(metrics_path)), _RestApi.metrics)
        routes = (metrics,) + routes
    sock = _bind(host, port, reuse_port)
    executor = futures.ThreadPoolExecutor(max_workers=core.max_concurrent_runs,
                                          thread_name_prefix=f"rest-api:{sock.getsockname()[1]}")
    api = _RestApi(core, timeout_ms, max_json_depth, metrics_fn or core.metrics_exposition, executor)
    shared = {} if grpc_server is None else {"loop": grpc_server.loop, "held": grpc_server.hold()}
    # A server that fails to start shuts its executor down and releases the loop itself.
    server = RestServer(_App(api, routes, max_body_bytes), sock, max_connections=max_connections,
                        idle_timeout=idle_timeout, executor=executor, **shared)
    logger.info("REST API listening on %s", server.url)
    return server

"""`ModelServer`: tensorflow_model_server as an object you can start in-process.

It is what the `zoo-model-server` console script runs. The keyword arguments are
tensorflow_model_server's flags; `start()` does what its `main` does: read the
config files, load every model (failing if one cannot be loaded), then open the
gRPC port (and the REST port, through `serving.rest`, when one is asked for);
with an `SSLConfig` (--ssl_config_file) gRPC is served over TLS, checked before
any model loads; REST stays plain HTTP, as TF Serving's REST server does;
`stop(grace)` turns health to NOT_SERVING, stops taking requests, lets the ones in
flight finish and unloads the models.

Example:
    >>> with ModelServer("/models/mnist", "mnist", port=0) as server:
    ...     client = serving.Client(f"localhost:{server.grpc_port}", "mnist")
"""

import dataclasses
import logging
import os
import threading

import grpc

from serving import config as config_files, rest
from serving import flags as server_flags
from serving.flags import ServerOptions, check_option_names, options_from_flags
from serving.batching import BatchingOptions, BatchScheduler
from serving.core import ServerCore
from serving.errors import ServingError
from serving.grpc_server import AsyncioServer, build_grpc_server, server_credentials, set_serving
from serving.metrics import PROMETHEUS_PATH, Metrics
from serving.servables import ModelManager

log = logging.getLogger(__name__)

# TF Serving's REST server (net_http over libevent) has no TLS either.
REST_PLAIN_HTTP_WARNING = (
    "%s secures gRPC only: the HTTP/REST API at %s:%s is plain HTTP (TF Serving's "
    "REST server has no TLS either). Keep --rest_api_host on localhost, or put a TLS-terminating "
    "proxy in front of it."
)


class ModelServer:
    """A TF Serving–compatible model server running in this process.

    Its options are tensorflow_model_server's flags, by name (`port=0`,
    `enable_batching=True`, `rest_api_timeout_in_ms=200`, ...; `serving.flags.FLAGS`
    lists them with their meanings), given as keywords or as a whole
    `serving.flags.ServerOptions`; an unknown name is a TypeError that names the
    closest flag. Two differ from the command line: `rest_api_port=None` (the
    default) serves no REST API and `rest_api_port=0` picks a free port.

    Args:
        model_base_path: folder whose numeric subfolders are the versions of one
            model (--model_base_path); ignored when a config is given.
        model_name: that model's name (--model_name).
        options: a `ServerOptions`; keywords given beside it override its fields.
        config: a `ModelServerConfig` proto, or its text, instead of a file.
        ssl_config: a `tensorflow.serving.SSLConfig` proto, or its text, instead
            of --ssl_config_file: serve gRPC over TLS.
        batching_parameters: a `BatchingParameters` proto or its text, instead of
            --batching_parameters_file.
        monitoring_config: a `MonitoringConfig` proto or its text, instead of
            --monitoring_config_file.
        worker: a `serving.workers.WorkerRole` when this server is one of the
            worker processes of `zoo-model-server --worker_processes=N`: its ports
            are shared with the others, and it refuses HandleReloadConfigRequest.
        **flags: any other option, by its flag name.
    """

    def __init__(self, model_base_path=None, model_name=None, *, options=None, config=None,
                 ssl_config=None, batching_parameters=None, monitoring_config=None, worker=None, **flags):
        check_option_names(flags)
        given = dict(flags)
        if model_base_path is not None:
            given["model_base_path"] = model_base_path
        if model_name is not None:
            given["model_name"] = model_name
        self.options = dataclasses.replace(options if options is not None else ServerOptions(), **given)
        self.config = config
        self.ssl_config = ssl_config
        self.batching_parameters = batching_parameters
        self.monitoring_config = monitoring_config
        self.worker = worker
        self.rest_api_host = self.options.rest_api_host or self.options.host

        self.core = None
        self.metrics = None
        self._manager = None
        self._batcher = None
        self._grpc = None
        self._health = None
        self._rest = None
        self._grpc_port = None
        self._tls = False
        self._client_verify = False
        self._stopping = threading.Event()
        self._stopped = threading.Event()
        self._config_poller = None
        self._lock = threading.Lock()

    @classmethod
    def from_flags(cls, namespace, worker=None):
        """A ModelServer from a parsed command line (`serving.flags.parse_flags`)."""
        return cls(options=options_from_flags(namespace), worker=worker)

    # Properties.

    @property
    def grpc_port(self):
        """The TCP port gRPC listens on (the one picked when `port` was 0)."""
        return self._grpc_port

    @property
    def rest_port(self):
        """The REST port, or None when no REST API runs."""
        return self._rest.port if self._rest is not None else None

    @property
    def tls(self):
        """True when gRPC is served with TLS (an SSL config) or ALTS."""
        return self._tls

    @property
    def address(self):
        """"host:port" of the gRPC API."""
        return f"{self.options.host}:{self._grpc_port}"

    # Life cycle.

    def start(self):
        """Load the models and open the ports; raise ServingError if that fails."""
        try:
            self._start()
        except BaseException:
            self._teardown()
            self._stopped.set()
            raise
        return self

    def _start(self):
        # Bad credentials fail the start before any model is loaded.
        credentials = self._server_credentials()
        model_config = self._model_server_config()
        batching = self._batching_options()
        monitoring = self._monitoring_config()

        self.metrics = Metrics()
        iterations = self.options.num_request_iterations_for_warmup or 1

        def warmup(servable):
            self.core.warmup(servable, iterations=iterations)

        if batching is not None:
            self._batcher = BatchScheduler(batching, self.metrics)
        self._manager = ModelManager(
            file_system_poll_wait_seconds=self.options.file_system_poll_wait_seconds,
            num_load_threads=self.options.num_load_threads,
            max_num_load_retries=self.options.max_num_load_retries,
            load_retry_interval_micros=self.options.load_retry_interval_micros,
            allow_version_labels_for_unavailable_models=self.options.allow_version_labels_for_unavailable_models,
            saved_model_tags=tuple(t for t in self.options.saved_model_tags.split(",") if t),
            warmup=warmup if self.options.enable_model_warmup else None,
            on_unload=self._batcher.forget if self._batcher is not None else None,
        )
        self.core = ServerCore(
            self._manager,
            batcher=self._batcher,
            metrics=self.metrics,
            enable_signature_method_name_check=self.options.enable_signature_method_name_check,
            max_request_tensor_bytes=self.options.max_request_tensor_bytes,
            reload_refusal=self.worker.reload_refusal if self.worker is not None else "",
        )
        self._manager.reload_config(model_config)
        self._manager.start()
        if self.options.model_config_file and self.options.model_config_file_poll_wait_seconds > 0:
            self._config_poller = threading.Thread(
                target=self._poll_config_file, args=(model_config,), name="config_poll", daemon=True
            )
            self._config_poller.start()

        # A Unix socket cannot be shared: the first worker listens on it.
        socket_path = self.options.grpc_socket_path if self.worker is None or self.worker.index == 0 else ""
        self._grpc, self._grpc_port, self._health = build_grpc_server(
            self.core,
            host=self.options.host,
            port=self.options.port,
            socket_path=socket_path,
            channel_arguments=self.options.grpc_channel_arguments,
            max_threads=server_flags.grpc_max_threads(self.options.grpc_max_threads),
            # Batched requests wait on an event loop rather than on worker threads.
            asynchronous=self._batcher is not None,
            credentials=credentials,
            health_service=self.options.enable_grpc_healthcheck_service,
            alts=self.options.use_alts_credentials,
            reuse_port=self.worker is not None,
        )
        self._tls = credentials is not None
        self._grpc.start()
        set_serving(self._health, True)
        log.info("Running gRPC ModelServer at %s:%s%s ...", self.options.host, self._grpc_port, self._security_note())
        if socket_path:
            log.info("Running gRPC ModelServer at UNIX socket %s ...", self.options.grpc_socket_path)
        self._start_rest(monitoring)

    def _start_rest(self, monitoring):
        if self.options.rest_api_port is None:
            return
        if self.options.rest_api_port and self.options.rest_api_port == self._grpc_port:
            log.error("--rest_api_port cannot be same as --port. Please use a different port for "
                      "HTTP/REST API. Skipped exporting HTTP/REST API.")
            return
        prometheus = monitoring.prometheus_config
        metrics_path = (prometheus.path or PROMETHEUS_PATH) if prometheus.enable else None
        self._rest = rest.start_rest_server(
            self.core, self.rest_api_host, self.options.rest_api_port, self.options.rest_api_timeout_in_ms, metrics_path,
            metrics_fn=self.core.metrics_exposition,
            # With batching, one event loop serves both APIs.
            grpc_server=self._grpc if isinstance(self._grpc, AsyncioServer) else None,
            reuse_port=self.worker is not None,
        )
        log.info("Exporting HTTP/REST API at:%s:%s ...", self.rest_api_host, self._rest.port)
        if self._tls:
            flag = "--use_alts_credentials" if self.options.use_alts_credentials else "--ssl_config_file"
            log.warning(REST_PLAIN_HTTP_WARNING, flag, self.rest_api_host, self._rest.port)

    def stop(self, grace=None):
        """Stop: health NOT_SERVING first, then no new requests, in-flight ones finish.

        Args:
            grace: seconds in-flight gRPC requests get to finish (None: all the time
                they need).
        """
        with self._lock:
            if self._stopping.is_set():
                self._stopped.wait()
                return
            self._stopping.set()
        try:
            if self._health is not None:
                self._health.enter_graceful_shutdown()
            # Both front ends stop taking requests now and drain in parallel.
            drained = self._grpc.stop(grace) if self._grpc is not None else None
            if self._rest is not None:
                self._rest.stop(grace)
                self._rest = None
            if drained is not None:
                drained.wait()
            self._teardown()
        finally:
            self._stopped.set()
            log.info("Server stopped")

    def _teardown(self):
        self._stopping.set()
        if self._rest is not None:
            try:
                self._rest.stop()
            except Exception:
                log.exception("Stopping the REST server failed")
            self._rest = None
        if self._grpc is not None:
            self._grpc.stop(None)
        if self._config_poller is not None:
            self._config_poller.join()
            self._config_poller = None
        if self._manager is not None:
            self._manager.stop()
        if self._batcher is not None:
            self._batcher.stop()
        if self.core is not None:
            self.core.close()

    def wait(self, timeout=None):
        """Block until the server has stopped; True if it has."""
        return self._stopped.wait(timeout)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # Configuration.

    def _server_credentials(self):
        ssl_config = self.ssl_config
        if isinstance(ssl_config, str):
            ssl_config = config_files.parse_text(ssl_config, config_files.SSLConfig)
        if ssl_config is not None:
            config_files.check_ssl_config(ssl_config, "<ssl_config>")
        elif self.options.ssl_config_file:
            ssl_config = config_files.read_ssl_config(self.options.ssl_config_file)
        self._client_verify = ssl_config is not None and ssl_config.client_verify
        return server_credentials(ssl_config, use_alts=self.options.use_alts_credentials)

    def _security_note(self):
        if self.options.use_alts_credentials:
            return " (ALTS)"
        if self._tls:
            return " (TLS, client certificates required)" if self._client_verify else " (TLS)"
        return ""

    def _model_server_config(self):
        if self.config is not None:
            if isinstance(self.config, str):
                return config_files.parse_text(self.config, config_files.ModelServerConfig)
            return self.config
        if self.options.model_config_file:
            return config_files.read_model_server_config(self.options.model_config_file)
        if not self.options.model_base_path:
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "Both server_options.model_base_path and server_options.model_config_file are empty!",
            )
        return config_files.single_model_config(self.options.model_name, str(self.options.model_base_path))

    def _batching_options(self):
        params = self.batching_parameters
        if not self.options.enable_batching:
            if self.options.batching_parameters_file or params is not None:
                raise ServingError(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "server_options.batching_parameters_file is set without setting "
                    "server_options.enable_batching to true.",
                )
            return None
        if isinstance(params, str):
            params = config_files.parse_text(params, config_files.BatchingParameters)
        elif params is None and self.options.batching_parameters_file:
            params = config_files.read_batching_parameters(self.options.batching_parameters_file)
        if params is None:
            params = config_files.BatchingParameters()
            params.thread_pool_name.value = "model_server_batch_threads"
        return BatchingOptions.from_proto(params)

    def _monitoring_config(self):
        if isinstance(self.monitoring_config, str):
            return config_files.parse_text(self.monitoring_config, config_files.MonitoringConfig)
        if self.monitoring_config is not None:
            return self.monitoring_config
        if self.options.monitoring_config_file:
            return config_files.read_monitoring_config(self.options.monitoring_config_file)
        return config_files.MonitoringConfig()

    def _poll_config_file(self, current):
        # Server::PollFilesystemAndReloadConfig: a file that does not parse, or a
        # config that does not apply, is logged and the models keep serving.
        while not self._stopping.wait(self.options.model_config_file_poll_wait_seconds):
            try:
                new = config_files.read_model_server_config(self.options.model_config_file)
            except config_files.ConfigError as e:
                log.error("Failed to read ModelServerConfig file: %s %s", e.detail, e.message)
                continue
            if new == current:
                continue
            try:
                self._manager.reload_config(new)
                current = new
            except ServingError as e:
                log.error("PollFilesystemAndReloadConfig failed to ReloadConfig: %s", e.message)


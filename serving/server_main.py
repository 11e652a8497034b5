"""`zoo-model-server`: the console script, a drop-in for `tensorflow_model_server`.

    zoo-model-server --port=8500 --rest_api_port=8501 \
        --model_name=mnist --model_base_path=/models/mnist

It parses TF Serving's flags, logs one warning for each flag given that cannot
apply here (see `serving.flags`), applies the TensorFlow runtime flags
(--tensorflow_*_parallelism, --tensorflow_session_config_file), starts a
`ModelServer` and serves until SIGTERM or
SIGINT, on which health turns NOT_SERVING, new requests are refused and requests in
flight finish before the process exits 0. Start-up failures are reported the way
tensorflow_model_server reports them ("Failed to start server. Error: ...") and the
process exits non-zero (255, its -1). With `--worker_processes=N` (N > 1) it
supervises N such servers on the same ports instead (`serving.workers`).
"""

import gc
import logging
import os
import signal
import sys
import threading

EXIT_FAILURE = 255
# Seconds in-flight requests get to finish after SIGTERM (Kubernetes allows 30 in all).
SHUTDOWN_GRACE_SECONDS = 20


# ConfigProto fields of --tensorflow_session_config_file that apply here (set
# through tf.config before TensorFlow runs its first op); any other field set in
# the file is named in one warning.
_SESSION_FIELDS = (
    "intra_op_parallelism_threads",
    "inter_op_parallelism_threads",
    "allow_soft_placement",
    "log_device_placement",
    "gpu_options.allow_growth",
)


def _set_fields(message, prefix=""):
    """Dotted names of the fields set in a proto message, leaves only."""
    names = []
    for field, value in message.ListFields():
        name = prefix + field.name
        if field.message_type is not None and not field.is_repeated:
            names.extend(_set_fields(value, name + "."))
        else:
            names.append(name)
    return names


def _parallelism(options, session_config):
    """(intra, inter) thread counts as TF Serving's Server::BuildAndStart picks them.

    The flags win over the session config file's counts; 0 leaves TensorFlow's own, and
    a negative inter-op count runs each model's ops in the calling thread. As in TF
    Serving, the intra/inter flags count only when one of them is positive; otherwise
    both come from --tensorflow_session_parallelism.
    """
    intra = options.tensorflow_intra_op_parallelism
    inter = options.tensorflow_inter_op_parallelism
    session = options.tensorflow_session_parallelism
    if intra > 0 and inter > 0 and session > 0:
        import grpc

        from serving.errors import ServingError

        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            "Either configure server_options.tensorflow_session_parallelism or "
            "(server_options.tensorflow_intra_op_parallelism, "
            "server_options.tensorflow_inter_op_parallelism) separately. You cannot configure all.",
        )
    if intra <= 0 and inter <= 0:
        intra = inter = session
    if session_config is not None:
        intra = intra or session_config.intra_op_parallelism_threads
        inter = inter or session_config.inter_op_parallelism_threads
    return intra, inter


def _apply_tensorflow_options(options):
    """Apply the TensorFlow runtime flags; return the warnings to log.

    Must happen before TensorFlow runs its first op.

    Raises:
        ServingError: an unreadable session config file, or conflicting flags.
    """
    import tensorflow as tf

    from serving import config as config_files

    session_config = None
    warnings = []
    if options.tensorflow_session_config_file:
        session_config = config_files.read_session_config(options.tensorflow_session_config_file)
        ignored = [name for name in _set_fields(session_config) if name not in _SESSION_FIELDS]
        if ignored:
            warnings.append(
                f"--tensorflow_session_config_file={options.tensorflow_session_config_file}: "
                f"{', '.join(ignored)} ignored: only {', '.join(_SESSION_FIELDS)} apply in "
                "TensorFlow's Python runtime."
            )
    intra, inter = _parallelism(options, session_config)
    if options.tensorflow_inter_op_parallelism < 0 and inter >= 0:
        warnings.append(
            f"--tensorflow_inter_op_parallelism={options.tensorflow_inter_op_parallelism} ignored: as in TF "
            "Serving, it applies only with a positive --tensorflow_intra_op_parallelism (e.g. "
            "--tensorflow_intra_op_parallelism=2 --tensorflow_inter_op_parallelism=-1 runs each model's ops "
            "in the thread that calls it)."
        )
    try:
        if intra > 0:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter != 0:  # negative: every op in the caller's thread (the servables' sessions read it)
            tf.config.threading.set_inter_op_parallelism_threads(inter)
        if session_config is not None:
            if session_config.allow_soft_placement:
                tf.config.set_soft_device_placement(True)
            if session_config.log_device_placement:
                tf.debugging.set_log_device_placement(True)
            if session_config.gpu_options.allow_growth:
                for gpu in tf.config.list_physical_devices("GPU"):
                    tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError as e:  # only when TensorFlow already runs (main() called in-process)
        warnings.append(f"TensorFlow runtime settings not applied: {e}")
    return warnings


def _report_start_failure(error):
    from serving.config import ConfigError

    if isinstance(error, ConfigError) and error.detail:
        print(error.detail, file=sys.stderr)
    print(f"Failed to start server. Error: {error}", file=sys.stderr, flush=True)


def main(argv=None):
    """Run the server; return the process exit status."""
    from serving.flags import FlagError, parse_flags

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        options = parse_flags(argv)
    except FlagError as e:
        print(f"{e}\n{e.usage}", file=sys.stderr)
        return EXIT_FAILURE
    if options.version:
        from importlib import metadata

        import tensorflow as tf

        try:
            version = metadata.version("keras-zoo")
        except metadata.PackageNotFoundError:
            version = "unknown"
        print(f"TensorFlow ModelServer: zoo-model-server {version}\nTensorFlow Library: {tf.__version__}")
        return 0

    from serving.workers import Supervisor, WorkerRole

    try:
        worker = WorkerRole.from_environment()
    except ValueError as e:
        print(e, file=sys.stderr)
        return EXIT_FAILURE
    workers = options.worker_processes or os.cpu_count() or 1
    if workers < 0:
        print(f"--worker_processes={options.worker_processes}: give a number of processes, at least 1 "
              "(0: one per CPU core)", file=sys.stderr)
        return EXIT_FAILURE
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    who = f" worker-{worker.index}" if worker is not None else ""
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s %(levelname).1s{who} %(name)s] %(message)s", stream=sys.stderr
    )
    if worker is None and workers > 1:
        # The supervisor loads no TensorFlow; each worker is this same program.
        return Supervisor(argv, options, workers).run(grace=SHUTDOWN_GRACE_SECONDS + 5)
    from serving.errors import ServingError
    from serving.flags import ignored_flag_warnings
    from serving.server import ModelServer

    log = logging.getLogger("serving.server_main")  # __main__ under python -m
    for warning in ignored_flag_warnings(options):
        log.warning(warning)
    try:
        for warning in _apply_tensorflow_options(options):
            log.warning(warning)
    except ServingError as e:
        _report_start_failure(e)
        return EXIT_FAILURE
    # What is loaded by now (TensorFlow: some 300,000 objects) lives as long as the
    # process; frozen, it is no longer walked by every full garbage collection, a
    # pause of over 0.1 s each here. Models loaded later stay collectable.
    gc.freeze()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = ModelServer.from_flags(options, worker=worker)
        try:
            server.start()
        except ServingError as e:
            _report_start_failure(e)
            return EXIT_FAILURE
        if worker is not None:
            worker.announce_ready()
        while not stop.wait(0.5):
            pass
        log.info("Received shutdown signal; draining requests")
        server.stop(grace=SHUTDOWN_GRACE_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

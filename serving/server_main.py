"""`zoo-model-server`: the console script, a drop-in for `tensorflow_model_server`.

    zoo-model-server --port=8500 --rest_api_port=8501 \
        --model_name=mnist --model_base_path=/models/mnist

It parses TF Serving's flags, starts a `ModelServer` and serves until SIGTERM or
SIGINT, on which health turns NOT_SERVING, new requests are refused and requests in
flight finish before the process exits 0. Start-up failures are reported the way
tensorflow_model_server reports them ("Failed to start server. Error: ...") and the
process exits non-zero (255, its -1).
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


def _apply_threading(options):
    # Must happen before TensorFlow runs its first op.
    import tensorflow as tf

    intra = options.tensorflow_intra_op_parallelism or options.tensorflow_session_parallelism
    inter = options.tensorflow_inter_op_parallelism or options.tensorflow_session_parallelism
    if intra:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
    if inter:
        tf.config.threading.set_inter_op_parallelism_threads(inter)


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

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname).1s %(name)s] %(message)s", stream=sys.stderr
    )
    from serving.config import ConfigError
    from serving.errors import ServingError
    from serving.server import ModelServer

    _apply_threading(options)
    # What is loaded by now (TensorFlow: some 300,000 objects) lives as long as the
    # process; frozen, it is no longer walked by every full garbage collection, a
    # pause of over 0.1 s each here. Models loaded later stay collectable.
    gc.freeze()
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        server = ModelServer.from_flags(options)
        try:
            server.start()
        except ServingError as e:
            if isinstance(e, ConfigError) and e.detail:
                print(e.detail, file=sys.stderr)
            print(f"Failed to start server. Error: {e}", file=sys.stderr, flush=True)
            return EXIT_FAILURE
        while not stop.wait(0.5):
            pass
        logging.getLogger(__name__).info("Received shutdown signal; draining requests")
        server.stop(grace=SHUTDOWN_GRACE_SECONDS)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())

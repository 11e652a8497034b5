"""Serving: a TF Serving–compatible model server and a client for it.

- `ModelServer`: tensorflow_model_server in-process (and the `zoo-model-server`
  console script), serving SavedModels over TF Serving's gRPC and REST APIs.
- `Client`: one API over gRPC and REST for any TF Serving.

Example:
    >>> with serving.ModelServer("/models/mnist", "mnist", port=0) as server:
    ...     client = serving.Client(f"localhost:{server.grpc_port}", "mnist")
"""

__all__ = ["Client", "ModelServer"]


def __getattr__(name):
    # Imported on first use: the server pulls in TensorFlow, and a client-only user
    # should not pay for it.
    if name == "ModelServer":
        from serving.server import ModelServer

        return ModelServer
    if name == "Client":
        from serving.client import Client

        return Client
    raise AttributeError(f"module 'serving' has no attribute {name!r}")

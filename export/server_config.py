"""Server configuration beside the exports: `models.config` and `batching_parameters.txt`.

Both are what `tensorflow_model_server` (and `zoo-model-server`) read:

    tensorflow_model_server --model_config_file=models/models.config \\
        --enable_batching --batching_parameters_file=models/batching_parameters.txt

`models.config` is a `ModelServerConfig` (`model_config_list`, text format) with one
entry per model folder in the base path; entries already in the file are kept as
they are (a hand-edited policy or label survives the next export), new model folders
are added, and the model just exported gets the version policy asked for.
`batching_parameters.txt` is a `BatchingParameters` message (TF Serving's
session_bundle_config.proto) in text format, written once with defaults for a small
CPU server and never overwritten, because it is the file an operator tunes.
"""

from __future__ import annotations

import os
import pathlib

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

MODELS_CONFIG = "models.config"
BATCHING_FILE = "batching_parameters.txt"
POLICIES = ("latest", "all", "specific")

# BatchingParameters defaults. A batch of 32 keeps latency per request near one
# model call; 1 ms of waiting is about one gRPC round trip on this class of machine.
BATCHING_DEFAULTS = {"max_batch_size": 32, "batch_timeout_micros": 1000, "max_enqueued_batches": 100}


def parse_version_policy(text: str) -> tuple[str, list[int]]:
    """'latest', 'latest:2', 'all' or 'specific:1,3' -> (policy, numbers).

    Example:
        >>> parse_version_policy("specific:1,3")
        ('specific', [1, 3])
    """
    kind, _, rest = str(text).partition(":")
    try:
        numbers = [int(n) for n in rest.split(",") if n.strip()]
    except ValueError:
        numbers = None
    ok = (numbers is not None and kind in POLICIES
          and (kind != "all" or not numbers) and (kind != "specific" or numbers)
          and (kind != "latest" or len(numbers) <= 1) and all(n >= 1 for n in numbers))
    if not ok:
        raise ValueError(
            f"Version policy {text!r} is not one of 'latest' (newest version), 'latest:N' "
            f"(newest N), 'all', or 'specific:1,3' (those versions)."
        )
    return kind, numbers


def _set_policy(entry, policy: str) -> None:
    kind, numbers = parse_version_policy(policy)
    entry.model_version_policy.Clear()
    if kind == "latest":
        entry.model_version_policy.latest.num_versions = numbers[0] if numbers else 1
    elif kind == "all":
        entry.model_version_policy.all.SetInParent()
    else:
        entry.model_version_policy.specific.versions.extend(numbers)


def served_models(base_path) -> list[str]:
    """Model folders under `base_path` that hold at least one numeric version folder
    with a saved_model.pb (TF Serving only looks at all-digit folder names)."""
    base = pathlib.Path(base_path)
    if not base.is_dir():
        return []
    return sorted(
        d.name for d in base.iterdir()
        if d.is_dir() and not d.name.startswith(".")
        and any(v.name.isdigit() and (v / "saved_model.pb").exists() for v in d.iterdir())
    )


def read_models_config(path) -> model_server_config_pb2.ModelServerConfig:
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(pathlib.Path(path).read_text(), config)
    return config


def _write_atomically(path: pathlib.Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_models_config(base_path, *, model_name: str | None = None, version_policy: str | None = None,
                        serving_base_path: str | None = None) -> pathlib.Path:
    """Writes `<base_path>/models.config` listing every model folder in `base_path`.

    Args:
        base_path: the folder holding `<model_name>/<version>/` exports.
        model_name: the model whose policy `version_policy` sets (others keep theirs).
        version_policy: see `parse_version_policy`; new entries default to 'latest'.
        serving_base_path: the base path as the server sees it, e.g. "/models" inside
            the TF Serving container; default: the absolute local path.

    Example:
        >>> write_models_config("models", model_name="digits", version_policy="all")
        PosixPath('models/models.config')
    """
    base = pathlib.Path(base_path)
    path = base / MODELS_CONFIG
    config = read_models_config(path) if path.exists() else model_server_config_pb2.ModelServerConfig()
    entries = {entry.name: entry for entry in config.model_config_list.config}
    root = serving_base_path or str(base.resolve())
    for name in served_models(base):
        entry = entries.get(name)
        if entry is None:
            entry = entries[name] = config.model_config_list.config.add()
            entry.name = name
            entry.base_path = f"{root.rstrip('/')}/{name}"
            entry.model_platform = "tensorflow"
            _set_policy(entry, "latest")
        elif serving_base_path:
            entry.base_path = f"{root.rstrip('/')}/{name}"
        if name == model_name and version_policy:
            _set_policy(entry, version_policy)
    header = ("# TF Serving model config (ModelServerConfig, text format), written by `zoo export`.\n"
              "# Use: tensorflow_model_server --model_config_file=<this file>. Edits are kept.\n")
    _write_atomically(path, header + text_format.MessageToString(config))
    return path


def batching_parameters_text(max_batch_size: int = BATCHING_DEFAULTS["max_batch_size"],
                             batch_timeout_micros: int = BATCHING_DEFAULTS["batch_timeout_micros"],
                             max_enqueued_batches: int = BATCHING_DEFAULTS["max_enqueued_batches"],
                             num_batch_threads: int | None = None) -> str:
    """BatchingParameters text format (field names of TF Serving's session_bundle_config.proto).

    tensorflow-serving-api does not ship that proto, so the text is written here; its
    Int64Value wrapper fields are written as `field { value: N }`.
    """
    for name, value in (("max_batch_size", max_batch_size), ("batch_timeout_micros", batch_timeout_micros),
                        ("max_enqueued_batches", max_enqueued_batches)):
        if not isinstance(value, int) or value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be a positive int, got {value!r}.")
    threads = (f"num_batch_threads {{ value: {num_batch_threads} }}\n" if num_batch_threads else
               "# num_batch_threads { value: 4 }  # default: the serving machine's core count\n")
    return (
        "# TF Serving batching (BatchingParameters, text format), written by `zoo export`.\n"
        "# Use: --enable_batching --batching_parameters_file=<this file>. Tune freely; not overwritten.\n"
        f"max_batch_size {{ value: {max_batch_size} }}\n"
        f"batch_timeout_micros {{ value: {batch_timeout_micros} }}\n"
        f"max_enqueued_batches {{ value: {max_enqueued_batches} }}\n"
        + threads
    )


def write_batching_parameters(base_path, overwrite: bool = False, **params) -> pathlib.Path:
    """Writes `<base_path>/batching_parameters.txt` unless it exists (or `overwrite`)."""
    path = pathlib.Path(base_path) / BATCHING_FILE
    if overwrite or not path.exists():
        _write_atomically(path, batching_parameters_text(**params))
    return path


def write_server_config(base_path, **kwargs) -> tuple[pathlib.Path, pathlib.Path]:
    """`models.config` (see `write_models_config`) and `batching_parameters.txt`."""
    return write_models_config(base_path, **kwargs), write_batching_parameters(base_path)

"""`zoo predict` and `zoo serve`: query a served model, serve a folder of exports.

The `zoo` CLI registers both with `add_parsers(subparsers)`; each handler is
`args.fn(args)` and returns the exit code. Nothing heavy is imported until a command
runs, so `zoo --help` stays fast. The model's task reads the request (image files,
texts) and shows the answer.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shlex
import shutil
import subprocess
import sys
import tempfile

from export.serving_ops import DEFAULT_SERVING_VERSION

PREDICT_EXAMPLES = """\
example:
  zoo predict --server localhost:8500 --model digits digit.png          (image_bytes signature)
  zoo predict --server localhost:8500 --model digits --signature serving_default digit.png
                                                   (decoded to pixels here, sent as floats)
  zoo predict --server localhost:8501 --rest --model imdb "a gripping film" "dull"
  zoo predict --local models/commands yes.wav                 (no server: the export answers here)
"""

SERVE_EXAMPLES = """\
example:
  zoo serve models                          (every model under models/, gRPC 8500, REST 8501)
  zoo serve models --enable_batching --rest_api_port 8601
  zoo serve models --engine tfserving       (the tensorflow/serving container, with docker)
  zoo serve models --engine tfserving --dry-run   (print the docker command only)

then:
  zoo predict --server localhost:8500 --model NAME FILE...
"""

# The release exports are checked against by default (`zoo export --target-serving-version`).
TFSERVING_IMAGE = f"tensorflow/serving:{DEFAULT_SERVING_VERSION}.0"
# Where the container sees the base path and the generated config.
CONTAINER_MODELS = "/models"
CONTAINER_CONFIG = "/etc/zoo"


def add_parsers(subparsers) -> None:
    """Registers `predict` and `serve` on the `zoo` CLI's subparsers.

    Example:
        >>> parser = argparse.ArgumentParser(prog="zoo")
        >>> add_parsers(parser.add_subparsers(dest="command"))
        >>> args = parser.parse_args(["serve", "models", "--dry-run"])
        >>> args.fn(args)
    """
    p = subparsers.add_parser(
        "predict", help="ask a served model (gRPC or REST) and print labels and scores",
        description="Send FILEs (images) or TEXTs to a model on a TF Serving-compatible "
                    "server and print one line per input: the input and the answer (for a "
                    "classifier, the label and its score). The model's task reads the inputs: "
                    "image files go as raw bytes to image_bytes (or decoded to pixels with "
                    "--signature serving_default); texts, or text files, go to the text input.",
        epilog=PREDICT_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("inputs", nargs="+", metavar="FILE|TEXT", help="files to send, or texts")
    p.add_argument("--server", help="HOST:PORT (default localhost:8500, or localhost:8501 with --rest)")
    p.add_argument("--model", help="the model name on the server")
    p.add_argument("--local", metavar="EXPORT", help="answer here, without a server, from an export "
                                                     "(models/NAME, its latest version, or models/NAME/VERSION)")
    p.add_argument("--signature", help="signature key (default: image_bytes for image files when the "
                                       "model has it, else serving_default)")
    p.add_argument("--rest", action="store_true", help="use the REST API instead of gRPC")
    p.add_argument("--version", type=int, help="a specific model version (default: the latest)")
    p.add_argument("--label", help="a version label, e.g. stable")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per request (default 30)")
    p.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="first wait up to this long for the model to be served (a server still starting)")
    p.add_argument("--json", action="store_true", help="print every output as JSON instead")
    p.add_argument("--draw", metavar="PNG", help="an object detector's boxes drawn on the image, written to PNG "
                   "(with several images, PNG is a folder that gets one file per image)")
    p.set_defaults(fn=run_predict, func=run_predict)

    p = subparsers.add_parser(
        "serve", help="serve every model under a base path (embedded server or the TF Serving container)",
        description="Serve BASE_PATH/<model>/<version>/ for every model in BASE_PATH (or BASE_PATH "
                    "itself when it is one model's folder) with one model config list. "
                    "--engine embedded (default) runs zoo-model-server in this process; --engine "
                    "tfserving runs the tensorflow/serving container with docker. Version policies "
                    "and labels in BASE_PATH/models.config are kept; new versions are picked up "
                    "while serving.",
        epilog=SERVE_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("base_path", help="folder of exported models (as `zoo export` writes it)")
    p.add_argument("--engine", choices=("embedded", "tfserving"), default="embedded")
    p.add_argument("--model", action="append", dest="models", metavar="NAME",
                   help="serve only this model (repeatable; default: all)")
    p.add_argument("--host", default="localhost",
                   help="address to listen on (default localhost; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=int, default=8500, help="gRPC port (default 8500)")
    p.add_argument("--rest_api_port", "--rest-api-port", type=int, default=8501,
                   help="REST port (default 8501; 0 turns REST off)")
    p.add_argument("--enable_batching", "--enable-batching", action="store_true",
                   help="batch concurrent requests (BASE_PATH/batching_parameters.txt if present)")
    p.add_argument("--batching_parameters_file", "--batching-parameters-file",
                   help="BatchingParameters text file (implies --enable_batching)")
    p.add_argument("--poll_seconds", "--poll-seconds", type=int, default=2,
                   help="how often to look for new versions (default 2 s)")
    p.add_argument("--server-flag", action="append", default=[], metavar="NAME=VALUE",
                   help="a further tensorflow_model_server flag, e.g. rest_api_timeout_in_ms=5000 "
                        "(repeatable)")
    p.add_argument("--image", default=TFSERVING_IMAGE, help=f"container image (default {TFSERVING_IMAGE})")
    p.add_argument("--dry-run", action="store_true", help="print the config and the command; run nothing")
    p.set_defaults(fn=run_serve, func=run_serve)


# ---------------------------------------------------------------------------
# zoo predict
# ---------------------------------------------------------------------------


# Arguments with these endings name files: a missing one is an error, never sent as text.
FILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".wav", ".flac", ".txt", ".json", ".npy")


def run_predict(args) -> int:
    import pathlib

    from serving.client import Client, ClientError

    missing = [v for v in args.inputs if v.lower().endswith(FILE_SUFFIXES) and not pathlib.Path(v).is_file()]
    if missing:
        raise FileNotFoundError(f"no such file: {', '.join(missing)}")

    if args.local is not None:
        if args.server or args.model or args.rest:
            raise ValueError("--local answers from an export here; it takes no --server, --model or --rest")
        return _predict_locally(args)
    if not args.model:
        raise ValueError("give --model NAME (the model on the server), or --local EXPORT to answer without a server")
    server = args.server or ("localhost:8501" if args.rest else "localhost:8500")
    client = Client(server, args.model, protocol="rest" if args.rest else "grpc", timeout=args.timeout,
                    retries=2)
    try:
        if args.wait > 0:
            client.wait_until_available(timeout=args.wait)
        signatures = client.metadata(version=args.version, label=args.label)["signatures"]
        if args.signature is not None and args.signature not in signatures:
            raise ValueError(f"model {args.model!r} has no signature {args.signature!r}; it has: "
                             f"{', '.join(signatures)}")
        task, name, inputs = _request(args, signatures)
        _check_draw(args, task)
        if name not in signatures:
            raise ValueError(f"model {args.model!r} has no signature {name!r}; it has: {', '.join(signatures)}")
        outputs = client.predict(inputs, signature=name, version=args.version, label=args.label)
    except ClientError as e:
        # The request's fault (an unknown model, a bad input) is bad input; anything else
        # (no server, a deadline) is a failure.
        bad_request = e.code.name in ("NOT_FOUND", "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE")
        raise (ValueError if bad_request else RuntimeError)(f"{server}: {e}") from None
    finally:
        client.close()
    _print_answers(args, task, outputs)
    return 0


def _predict_locally(args) -> int:
    """`zoo predict --local EXPORT`: the export answers in this process, as its server would."""
    import zoo
    from export.model_card import read_signatures

    predictor = zoo.load(args.local)
    if predictor.version_dir is None:
        raise ValueError(f"{args.local} is a run; --local takes an export (zoo export {args.local}), or use "
                         f"zoo.load({str(args.local)!r}) in Python")
    signatures = read_signatures(predictor.version_dir)
    if args.signature is not None and args.signature not in signatures:
        raise ValueError(f"{predictor.version_dir} has no signature {args.signature!r}; it has: "
                         f"{', '.join(signatures)}")
    task, name, inputs = _request(args, signatures)
    _check_draw(args, task)
    _print_answers(args, task, predictor(inputs, signature=name))
    return 0


def _request(args, signatures: dict):
    """(task, signature key, inputs) for the VALUES: the task whose exports have these
    signatures reads them (a server knows signatures, not tasks); any other model gets
    strings or file bytes sent as they are."""
    from zoo import tasks

    task = tasks.task_for_signatures(signatures)
    if task is not None:
        return (task,) + task.read_request(args.inputs, signatures, args.signature)
    return (None,) + _plain_request(args.inputs, signatures, args.signature or "serving_default")


def _print_answers(args, task, outputs) -> None:
    """Each input's answer as its task shows it (or as JSON); with --draw, drawn on it too."""
    for source, row in zip(args.inputs, _rows(outputs)):
        if args.json:
            print(json.dumps({"input": source, "outputs": row}, ensure_ascii=False))
        else:
            print(f"{source}\t{task.format_answer(row) if task else json.dumps(row, ensure_ascii=False)}")
    _draw(args, task, outputs)


def _check_draw(args, task) -> None:
    if args.draw is not None and (task is None or not task.draws):
        kind = task.name if task is not None else "not a zoo export"
        raise ValueError(f"--draw draws an object detector's boxes; this model ({kind}) answers no boxes")


def _draw(args, task, outputs) -> None:
    """`--draw PNG`: each input image with its answer drawn on it."""
    if args.draw is None:
        return
    out = pathlib.Path(args.draw)
    if len(args.inputs) == 1:
        targets = [out]
    else:
        out.mkdir(parents=True, exist_ok=True)
        targets = [out / f"{i}_{pathlib.Path(v).stem}.png" for i, v in enumerate(args.inputs)]
    for source, row, target in zip(args.inputs, _rows(outputs), targets):
        task.draw(source, row, target)
        print(f"drew {source} -> {target}")


def _plain_request(values, signatures: dict, name: str):
    """A model no zoo task serves: its one string input gets the texts, or the files'
    bytes (the raw bytes for an input named *_bytes, else the files' text)."""
    import numpy as np

    inputs = signatures.get(name, {}).get("inputs", {})
    if len(inputs) != 1 or next(iter(inputs.values()))["dtype"] != object:
        raise ValueError(f"signature {name!r} takes {', '.join(inputs) or 'nothing'}; zoo predict sends one "
                         "string input to a model that is not a zoo export. Use serving.Client for it.")
    (key, _), = inputs.items()
    files = [os.path.isfile(v) for v in values]
    if any(files) and not all(files):
        raise ValueError("give files or texts, not both (not files: "
                         f"{', '.join(v for v, f in zip(values, files) if not f)})")
    if all(files):
        data = [pathlib.Path(v).read_bytes() for v in values]
        values = data if key.endswith("_bytes") else [d.decode("utf-8", "replace") for d in data]
    return name, {key: np.array(values, dtype=object)}


def _rows(outputs: dict) -> list[dict]:
    """Per-example dicts of JSON-ready values from a batch of outputs."""
    import numpy as np

    def plain(v):
        if isinstance(v, np.ndarray):
            return [plain(x) for x in v] if v.ndim else plain(v[()])
        if isinstance(v, bytes):
            return v.decode("utf-8", "replace")
        if isinstance(v, np.generic):
            return v.item()
        return v

    batch = min((len(v) for v in outputs.values() if np.ndim(v)), default=1)
    return [{k: plain(v[i]) if np.ndim(v) else plain(v) for k, v in outputs.items()} for i in range(batch)]


# ---------------------------------------------------------------------------
# zoo serve
# ---------------------------------------------------------------------------


def run_serve(args) -> int:
    from serving import config as server_config

    base = pathlib.Path(args.base_path).resolve()
    config = model_config(base, models=args.models,
                          serving_base_path=CONTAINER_MODELS if args.engine == "tfserving" else None)
    # The folder holding model folders.
    root = base.parent if server_config.is_model_folder(base) else base
    batching = args.batching_parameters_file
    if args.enable_batching and not batching and (root / server_config.BATCHING_FILE).exists():
        batching = str(root / server_config.BATCHING_FILE)
    if args.engine == "tfserving":
        return _serve_tfserving(args, root, config, batching)
    return _serve_embedded(args, config, batching)


def model_config(base: pathlib.Path, models=None, serving_base_path=None):
    """A ModelServerConfig listing every model under `base` (or `base` itself when it
    holds version folders), keeping policies and labels from `base/models.config`.

    The entries are `serving.config.models_config`'s, the same rules `zoo export`
    writes models.config with; only the models served here are listed.

    Args:
        base: the base path.
        models: only these model names.
        serving_base_path: the base path as the server sees it (e.g. "/models" in the
            container); default: `base`.
    """
    from serving import config as server_config

    if not base.is_dir():
        raise FileNotFoundError(f"{base} is not a folder")
    if server_config.is_model_folder(base):
        names, root = [base.name], base.parent
    else:
        names, root = server_config.served_models(base), base
    if models:
        unknown = sorted(set(models) - set(names))
        if unknown:
            raise ValueError(f"no model {', '.join(unknown)} under {base}; found: {', '.join(names) or 'none'}")
        names = [n for n in names if n in models]
    if not names:
        raise FileNotFoundError(f"no models under {base}: expected {base}/<model>/<version>/saved_model.pb "
                                "(as `zoo export` writes them)")
    try:
        # Every entry points where this server finds the model (the local folder, or
        # /models in the container), whatever base path the file names.
        return server_config.models_config(root, models=names, serving_base_path=serving_base_path or str(root))
    except server_config.ConfigError as e:
        raise ValueError(f"{e} ({e.detail})") from None


def _config_text(config) -> str:
    from google.protobuf import text_format

    return text_format.MessageToString(config)


def _server_flags(args, config_file, batching_file) -> list[str]:
    flags = [f"--port={args.port}", f"--rest_api_port={args.rest_api_port}",
             f"--model_config_file={config_file}",
             f"--file_system_poll_wait_seconds={args.poll_seconds}"]
    if args.enable_batching or batching_file:
        flags.append("--enable_batching=true")
    if batching_file:
        flags.append(f"--batching_parameters_file={batching_file}")
    for item in args.server_flag:
        name, sep, value = item.lstrip("-").partition("=")
        if not sep or not name:
            raise ValueError(f"--server-flag wants NAME=VALUE, got {item!r}")
        flags.append(f"--{name}={value}")
    return flags


def _serve_embedded(args, config, batching_file) -> int:
    with tempfile.TemporaryDirectory(prefix="zoo-serve-") as tmp:
        from serving import config as server_config

        config_file = server_config.write_text_file(os.path.join(tmp, server_config.MODELS_CONFIG), config)
        argv = [f"--host={args.host}"] + _server_flags(args, config_file, batching_file)
        if args.dry_run:
            print(_config_text(config), end="")
            print("zoo-model-server " + " ".join(shlex.quote(a) for a in argv))
            return 0
        names = ", ".join(c.name for c in config.model_config_list.config)
        print(f"serving {names}: gRPC {args.host}:{args.port}"
              + (f", REST http://{args.host}:{args.rest_api_port}" if args.rest_api_port else ""),
              file=sys.stderr)
        from serving import server_main

        return server_main.main(argv)


def tfserving_command(args, base: pathlib.Path, config_dir: str, batching_file) -> list[str]:
    """The `docker run` command line for the tensorflow/serving container.

    `base` (the folder holding the model folders) is mounted read-only at /models,
    the generated models.config at /etc/zoo; the container's ports 8500 (gRPC) and
    8501 (REST) are published on --port and --rest_api_port.
    """
    publish = _publish_host(args.host)
    cmd = ["docker", "run", "--rm", "--init", "-p", f"{publish}{args.port}:8500"]
    if args.rest_api_port:
        cmd += ["-p", f"{publish}{args.rest_api_port}:8501"]
    cmd += ["-v", f"{base}:{CONTAINER_MODELS}:ro", "-v", f"{config_dir}:{CONTAINER_CONFIG}:ro"]
    container_batching = None
    if batching_file:
        batching = pathlib.Path(batching_file).resolve()
        if batching.parent == base:
            container_batching = f"{CONTAINER_MODELS}/{batching.name}"
        else:
            cmd += ["-v", f"{batching}:{CONTAINER_CONFIG}-batching/{batching.name}:ro"]
            container_batching = f"{CONTAINER_CONFIG}-batching/{batching.name}"
    cmd += ["--entrypoint", "tensorflow_model_server", args.image]
    inner = argparse.Namespace(**{**vars(args), "port": 8500,
                                  "rest_api_port": 8501 if args.rest_api_port else 0})
    cmd += _server_flags(inner, f"{CONTAINER_CONFIG}/models.config", container_batching)
    return cmd


def _publish_host(host: str) -> str:
    # Docker publishes on every interface unless told; keep the server's own default.
    if host in ("", "0.0.0.0", "::"):
        return ""
    return ("127.0.0.1" if host == "localhost" else host) + ":"


def _serve_tfserving(args, base, config, batching_file) -> int:
    config_dir = tempfile.mkdtemp(prefix="zoo-serve-")
    try:
        from serving import config as server_config

        server_config.write_text_file(pathlib.Path(config_dir, server_config.MODELS_CONFIG), config)
        cmd = tfserving_command(args, base, config_dir, batching_file)
        if args.dry_run:
            print(_config_text(config), end="")
            print(" ".join(shlex.quote(c) for c in cmd))
            return 0
        _check_docker()
        print("running: " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr)
        return subprocess.call(cmd)
    finally:
        shutil.rmtree(config_dir, ignore_errors=True)


def _check_docker() -> None:
    """Raises RuntimeError unless a docker client can reach a docker engine."""
    docker = shutil.which("docker")
    if docker is None:
        raise RuntimeError("--engine tfserving runs the tensorflow/serving container, but docker is not "
                           "installed (no `docker` on PATH). Install Docker, or serve with the embedded "
                           "server: zoo serve BASE_PATH")
    try:
        probe = subprocess.run([docker, "info", "--format", "{{.ServerVersion}}"], capture_output=True,
                               text=True, timeout=20)
    except subprocess.TimeoutExpired:
        probe = None
    if probe is None or probe.returncode != 0 or not probe.stdout.strip():
        why = (probe.stderr.strip().splitlines() or ["no answer"])[-1] if probe else "no answer in 20 s"
        raise RuntimeError(f"docker is installed but its engine is not reachable ({why}). Start the Docker "
                           "engine, or serve with the embedded server: zoo serve BASE_PATH")

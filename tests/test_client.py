"""`serving.Client` over gRPC and REST, `zoo predict`, `zoo serve`, and the deploy files.

Every client test runs over both protocols against one `serving.ModelServer` and
checks the same numpy answers come back, equal to the SavedModel's own.
"""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest

import rest_models as rm
from serving.client import Client, ClientError, make_example
from serving.errors import ServingError
from zoo import cli


ROOT = pathlib.Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "serving" / "deploy"
IMAGE = (np.arange(32, dtype=np.float64).reshape(2, 4, 4, 1) * 7) % 255  # float64: cast by the client


@pytest.fixture(scope="module")
def toy_dir(tmp_path_factory):
    return rm.save_toy(tmp_path_factory.mktemp("client-models"))


@pytest.fixture(scope="module")
def model_server(toy_dir):
    srv = rm.start_server(toy_dir)
    yield srv
    srv.stop()


@pytest.fixture(scope="module", params=["grpc", "rest"])
def client(request, model_server):
    port = model_server.grpc_port if request.param == "grpc" else model_server.rest_port
    with Client(f"127.0.0.1:{port}", "toy", protocol=request.param, timeout=10) as c:
        yield c


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- predict, classify, regress, metadata, status ---------------------------


def test_predict_matches_the_saved_model(client, toy_dir):
    out = client.predict({"image": IMAGE.tolist()})  # a nested list of Python floats
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE.astype(np.float32))
    assert sorted(out) == ["class_id", "label", "probabilities"]
    assert out["probabilities"].dtype == np.float32 and out["class_id"].dtype == np.int64
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-6)
    # Labels come back as str, whatever the protocol.
    assert out["label"].tolist() == [label.decode() for label in want["label"]]
    # A signature with one input takes the value alone.
    np.testing.assert_array_equal(client.predict(IMAGE)["probabilities"], out["probabilities"])


def test_versions_labels_and_output_filter(client, toy_dir):
    for kwargs, version in (({"version": 1}, 1), ({"label": "canary"}, 2), ({"label": "stable"}, 1)):
        out = client.predict({"image": IMAGE}, output_filter=["probabilities"], **kwargs)
        assert list(out) == ["probabilities"]
        want = rm.reference(toy_dir, version, "serving_default", image=IMAGE.astype(np.float32))
        np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-6)
    with pytest.raises(ValueError, match="not both"):
        client.predict({"image": IMAGE}, version=1, label="stable")


def test_image_bytes(client, toy_dir):
    pngs = np.array([rm.png_bytes((np.arange(16).reshape(4, 4) * k) % 256) for k in (3, 11)], dtype=object)
    out = client.predict({"image_bytes": list(pngs)}, signature="image_bytes")
    want = rm.reference(toy_dir, 2, "image_bytes", image_bytes=pngs)
    np.testing.assert_allclose(out["probabilities"], want["probabilities"], rtol=1e-6)


def test_every_dtype_round_trips_the_same_way(client):
    text = ["plain", b"\x00binary\xff\x00"]  # a trailing NUL must survive
    out = client.predict({"count": [1, -7], "flag": np.array([True, False]), "text": text,
                          "pair": [[0.1, np.nan], [-np.inf, 2.5]]}, signature="echo")
    assert out["count"].dtype == np.int32 and out["count"].tolist() == [2, -14]
    assert out["flag"].tolist() == [False, True]
    assert out["text"].tolist() == [b"plain", b"\x00binary\xff\x00"]
    assert out["text_bytes"].tolist() == out["text"].tolist()
    assert out["raw"].tolist() == [b"plain\xff", b"\x00binary\xff\x00\xff"]
    assert out["pair"].dtype == np.float64
    np.testing.assert_array_equal(out["pair"], [[0.2, np.nan], [-np.inf, 5.0]])


def test_large_tensors_pass_grpcs_default_4mb_limit(client):
    pair = np.random.default_rng(0).normal(size=(300_000, 2))  # 4.8 MB each way
    n = len(pair)
    out = client.predict({"count": np.zeros(n, np.int32), "flag": np.zeros(n, bool),
                          "text": np.array([b""] * n, dtype=object), "pair": pair}, signature="echo",
                         output_filter=["pair"])
    np.testing.assert_array_equal(out["pair"], pair * 2)


def test_classify_and_regress(client, toy_dir):
    examples = [{"image": IMAGE[i].ravel()} for i in range(2)]
    results = client.classify(examples)
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE.astype(np.float32))["probabilities"]
    assert [[label for label, _ in row] for row in results] == [rm.LABELS] * 2
    np.testing.assert_allclose([[s for _, s in row] for row in results], want, rtol=1e-6)
    # tf.train.Example protos work too, and features shared by all go in the context.
    values = client.regress([make_example({})] * 2, context={"image": IMAGE[0].ravel()})
    np.testing.assert_allclose(values, [IMAGE[0].mean()] * 2, rtol=1e-6)


def test_metadata_and_status(client):
    meta = client.metadata(version=1)
    assert meta["model_spec"] == {"name": "toy", "version": 1}
    image = meta["signatures"]["serving_default"]["inputs"]["image"]
    assert image == {"dtype": np.dtype(np.float32), "shape": [None, 4, 4, 1]}
    assert meta["signatures"]["classify"]["method_name"] == "tensorflow/serving/classify"
    assert meta["signatures"]["echo"]["outputs"]["text"]["dtype"] == np.dtype(object)
    states = sorted(client.status(), key=lambda s: s["version"])
    assert states == [{"version": v, "state": "AVAILABLE", "error_code": "OK", "error_message": ""}
                      for v in (1, 2)]
    assert [s["version"] for s in client.status(version=1)] == [1]


# --- errors, deadlines, retries -------------------------------------------------


@pytest.mark.parametrize("call,code,text", [
    (lambda c: c.predict({"image": IMAGE}, version=9), grpc.StatusCode.NOT_FOUND, "Specific(toy, 9)"),
    (lambda c: c.predict({"image": IMAGE[:, :3]}), grpc.StatusCode.INVALID_ARGUMENT, "Input to reshape"),
    (lambda c: c.predict({"count": ["x"], "flag": [True], "text": ["a"], "pair": [[1, 2]]}, signature="echo"),
     grpc.StatusCode.INVALID_ARGUMENT, "int32"),
    (lambda c: c.classify([{"image": [1.0]}]), grpc.StatusCode.INVALID_ARGUMENT, ""),
    (lambda c: c.status(version=7), grpc.StatusCode.NOT_FOUND, "version 7"),
])
def test_errors_carry_the_code_and_the_servers_message(client, call, code, text):
    with pytest.raises(ClientError) as e:
        call(client)
    assert isinstance(e.value, ServingError) and e.value.code == code
    assert text in e.value.message and str(e.value).startswith(code.name)
    if client.protocol == "rest":
        assert e.value.http_status in (400, 404)
    assert client.predict({"image": IMAGE})["probabilities"].shape == (2, 3)  # the next call works


def test_unknown_signature_is_worded_as_tf_serving_words_it(client):
    # TF Serving's gRPC and REST front ends say it differently; each is kept.
    with pytest.raises(ClientError) as e:
        client.predict({"image": IMAGE}, signature="nope")
    if client.protocol == "grpc":
        assert (e.value.code, e.value.message) == (grpc.StatusCode.FAILED_PRECONDITION,
                                                   'Serving signature key "nope" not found.')
    else:
        assert (e.value.code, e.value.http_status) == (grpc.StatusCode.INVALID_ARGUMENT, 400)
        assert e.value.message == 'Serving signature name: "nope" not found in signature def'


def test_unknown_model(model_server):
    for protocol, port in (("grpc", model_server.grpc_port), ("rest", model_server.rest_port)):
        with Client(f"127.0.0.1:{port}", "nope", protocol=protocol) as c, pytest.raises(ClientError) as e:
            c.predict({"image": IMAGE})
        assert e.value.code == grpc.StatusCode.NOT_FOUND and "nope" in e.value.message


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    """A server on a model that takes as long as it is asked, with no REST timeout of its own."""
    srv = rm.start_slow_server(rm.save_slow(tmp_path_factory.mktemp("slow")), rest_api_timeout_in_ms=0)
    yield srv
    srv.stop()


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_deadline(slow_server, protocol):
    port = slow_server.grpc_port if protocol == "grpc" else slow_server.rest_port
    with Client(f"127.0.0.1:{port}", rm.SLOW_MODEL, protocol=protocol, timeout=0.3, retries=0) as fast:
        start = time.monotonic()
        with pytest.raises(ClientError) as e:
            fast.predict({"seconds": [1.0]})
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 0.8
    time.sleep(0.8)  # the run goes on in the server (a session run cannot be interrupted)


@pytest.mark.parametrize("protocol", ["grpc", "rest"])
def test_retries_on_unavailable_with_backoff(protocol, monkeypatch):
    c = Client(f"127.0.0.1:{free_port()}", "toy", protocol=protocol, retries=2, backoff=0.05, timeout=1)
    attempts = []
    real = c._transport.call
    monkeypatch.setattr(c._transport, "call", lambda *a: attempts.append(time.monotonic()) or real(*a))
    with pytest.raises(ClientError) as e:
        c.status()
    assert e.value.code == grpc.StatusCode.UNAVAILABLE and len(attempts) == 3
    assert attempts[-1] - attempts[0] >= 0.07  # waited 0.05 * 2**n * [0.5, 1] between tries
    with pytest.raises(TimeoutError, match="not available after"):
        c.wait_until_available(timeout=0.5)
    c.close()


def test_wait_until_available_rides_out_a_server_start(toy_dir):
    grpc_port, rest_port = free_port(), free_port()
    started = {}

    def start_later():
        time.sleep(1.0)
        started["server"] = rm.start_server(toy_dir, port=grpc_port, rest_api_port=rest_port)

    t = threading.Thread(target=start_later)
    t.start()
    try:
        for protocol, port in (("grpc", grpc_port), ("rest", rest_port)):
            with Client(f"127.0.0.1:{port}", "toy", protocol=protocol) as c:
                states = c.wait_until_available(timeout=60)
                assert any(s["state"] == "AVAILABLE" for s in states)
                assert c.predict({"image": IMAGE})["label"].shape == (2,)
    finally:
        t.join()
        started["server"].stop()


def test_one_client_many_threads(client, toy_dir):
    want = rm.reference(toy_dir, 2, "serving_default", image=IMAGE.astype(np.float32))["probabilities"]
    bad = []

    def work(k):
        for i in range(5):
            row = (k + i) % 2
            got = client.predict({"image": IMAGE[row:row + 1]})["probabilities"][0]
            if not np.allclose(got, want[row], rtol=1e-6):
                bad.append((k, i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


# --- zoo predict -------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for k in (3, 11):
        path = folder / f"img{k}.png"
        path.write_bytes(rm.png_bytes((np.arange(16).reshape(4, 4) * k) % 256))
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("rest_api", [False, True])
def test_zoo_predict_sends_files_to_image_bytes(model_server, toy_dir, images, capsys, rest_api):
    port = model_server.rest_port if rest_api else model_server.grpc_port
    argv = ["predict", "--server", f"127.0.0.1:{port}", "--model", "toy", *images] + (["--rest"] if rest_api else [])
    assert cli.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    want = rm.reference(toy_dir, 2, "image_bytes",
                        image_bytes=np.array([open(p, "rb").read() for p in images], dtype=object))
    for line, path, label, probs in zip(lines, images, want["label"], want["probabilities"]):
        source, got_label, score = line.split("\t")
        assert (source, got_label) == (path, label.decode()) and float(score) == pytest.approx(probs.max(), abs=1e-4)
    assert len(lines) == 2


def test_zoo_predict_decodes_files_for_serving_default(model_server, toy_dir, images, capsys):
    argv = ["predict", "--server", f"127.0.0.1:{model_server.grpc_port}", "--model", "toy",
            "--signature", "serving_default", "--json", images[0]]
    assert cli.main(argv) == 0
    import json

    row = json.loads(capsys.readouterr().out)
    pixels = np.asarray((np.arange(16).reshape(1, 4, 4, 1) * 3) % 256, np.float32)
    want = rm.reference(toy_dir, 2, "serving_default", image=pixels)
    assert row["input"] == images[0]
    np.testing.assert_allclose(row["outputs"]["probabilities"], want["probabilities"][0], rtol=1e-5)


def test_zoo_predict_errors_are_one_line(model_server, images, capsys):
    argv = ["predict", "--server", f"127.0.0.1:{model_server.grpc_port}", "--model", "nope", images[0]]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("zoo predict: error:") and "NOT_FOUND" in err and len(err.splitlines()) == 1
    argv = ["predict", "--server", f"127.0.0.1:{model_server.grpc_port}", "--model", "toy", "some text"]
    assert cli.main(argv) == 2
    assert "no such image file: some text" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_help_shows_an_example(command, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"zoo {command}" in out


# --- zoo serve ------------------------------------------------------------------------


def test_zoo_serve_dry_run_lists_every_model(toy_dir, tmp_path, capsys):
    base = pathlib.Path(toy_dir).parent
    assert cli.main(["serve", str(base), "--dry-run", "--enable_batching", "--server-flag",
                     "rest_api_timeout_in_ms=5000"]) == 0
    out = capsys.readouterr().out
    assert f'base_path: "{base}/toy"' in out and 'name: "toy"' in out
    command = out.strip().splitlines()[-1]
    assert command.startswith("zoo-model-server --host=localhost --port=8500 --rest_api_port=8501")
    assert "--enable_batching=true" in command and "--rest_api_timeout_in_ms=5000" in command
    assert cli.main(["serve", str(tmp_path)]) == 2
    assert "no models under" in capsys.readouterr().err


def test_zoo_serve_runs_the_embedded_server(toy_dir):
    grpc_port, rest_port = free_port(), free_port()
    base = pathlib.Path(toy_dir).parent
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    proc = subprocess.Popen([sys.executable, "-m", "zoo.cli", "serve", str(base), "--host", "127.0.0.1",
                             "--port", str(grpc_port), "--rest_api_port", str(rest_port)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        for protocol, port in (("grpc", grpc_port), ("rest", rest_port)):
            with Client(f"127.0.0.1:{port}", "toy", protocol=protocol) as c:
                c.wait_until_available(timeout=90)
                assert c.predict({"image": IMAGE})["probabilities"].shape == (2, 3)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log = proc.communicate()[0]
    assert "serving toy" in log


@pytest.fixture
def fake_docker(tmp_path, monkeypatch):
    """A `docker` on PATH that records its arguments; `info` fails when told to."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "docker.log"
    script = bin_dir / "docker"
    script.write_text(f"""#!/bin/sh
echo "$@" >> {log}
if [ "$1" = info ]; then
  if [ -f {tmp_path}/engine-down ]; then echo "Cannot connect to the Docker daemon" >&2; exit 1; fi
  echo 27.0.0; exit 0
fi
exit 0
""")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin")
    return tmp_path, log


def test_zoo_serve_tfserving_runs_the_container(toy_dir, fake_docker):
    tmp, log = fake_docker
    base = pathlib.Path(toy_dir).parent
    assert cli.main(["serve", str(base), "--engine", "tfserving", "--enable_batching",
                     "--batching_parameters_file", str(tmp / "batching.txt")]) == 0
    run = log.read_text().splitlines()[-1].split()
    assert run[:3] == ["run", "--rm", "--init"]
    assert "127.0.0.1:8500:8500" in run and "127.0.0.1:8501:8501" in run
    assert f"{base}:/models:ro" in run and run[run.index("--entrypoint") + 1] == "tensorflow_model_server"
    assert "tensorflow/serving:2.20.0" in run
    assert "--model_config_file=/etc/zoo/models.config" in run and "--enable_batching=true" in run
    assert "--batching_parameters_file=/etc/zoo-batching/batching.txt" in run


def test_zoo_serve_tfserving_without_docker_says_so(toy_dir, fake_docker, capsys, monkeypatch):
    tmp, _ = fake_docker
    base = str(pathlib.Path(toy_dir).parent)
    (tmp / "engine-down").touch()
    assert cli.main(["serve", base, "--engine", "tfserving"]) == 1  # a failure of the machine, not bad input
    err = capsys.readouterr().err
    assert "docker is installed but its engine is not reachable (Cannot connect to the Docker daemon)" in err
    assert "zoo serve BASE_PATH" in err
    monkeypatch.setenv("PATH", str(tmp / "empty"))
    assert cli.main(["serve", base, "--engine", "tfserving"]) == 1
    assert "docker is not installed" in capsys.readouterr().err
    # --dry-run needs no docker: it prints what it would run.
    assert cli.main(["serve", base, "--engine", "tfserving", "--dry-run", "--host", "0.0.0.0"]) == 0
    out = capsys.readouterr().out
    assert 'base_path: "/models/toy"' in out and "docker run --rm --init -p 8500:8500 -p 8501:8501" in out


# --- deploy files -------------------------------------------------------------------------


def test_deploy_files_are_valid_and_consistent():
    yaml = pytest.importorskip("yaml")  # PyYAML comes with keras-hub's dependencies
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    service = compose["services"]["tfserving"]
    assert service["image"].startswith("tensorflow/serving")
    assert "healthcheck" in service and any("8500" in str(p) for p in service["ports"])
    docs = [d for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for d in yaml.safe_load_all(f.read_text()) if d]
    kinds = {d["kind"]: d for d in docs}
    deployment = kinds["Deployment"]
    assert deployment["spec"]["replicas"] >= 2
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"].startswith("tensorflow/serving")
    assert "readinessProbe" in container and "livenessProbe" in container
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    services = [d for d in docs if d["kind"] == "Service"]
    assert {p["port"] for s in services for p in s["spec"]["ports"]} >= {8500, 8501}
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert all(s["spec"]["selector"].items() <= labels.items() for s in services)
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        f.name for f in (DEPLOY / "k8s").glob("*.yaml") if f.name != "kustomization.yaml")


def test_readiness_probe_script_reads_model_status(model_server):
    yaml = pytest.importorskip("yaml")
    config = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    script = config["data"]["ready.sh"].replace("8501", str(model_server.rest_port))
    env = dict(os.environ, MODELS="toy")
    assert subprocess.run(["bash", "-c", script], env=env, capture_output=True).returncode == 0
    env["MODELS"] = "toy nope"
    probe = subprocess.run(["bash", "-c", script], env=env, capture_output=True, text=True)
    assert probe.returncode == 1 and "model nope not available" in probe.stdout

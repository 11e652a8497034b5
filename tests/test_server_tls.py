"""zoo-model-server's gRPC over TLS (--ssl_config_file, TF Serving's SSLConfig).

A CA, a server certificate for "localhost" and client certificates are made here
with `cryptography`, and a second CA stands for a stranger. The servers load the tiny
image classifier of tests/serving_models.py, on the thread-pool gRPC server and on
the asyncio one (--enable_batching).
"""

import datetime
import ipaddress
import logging
import urllib.request

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

import serving_models as sm
from serving import ModelServer, tensors
from serving.config import ConfigError, SSLConfig
from serving.errors import ServingError
from serving.server_main import main as server_main

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

IMAGES = np.arange(8, dtype=np.float32).reshape(2, 2, 2, 1) / 8.0
REFUSED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


# Certificates.


def _key():
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key, password=None):
    encryption = (serialization.BestAvailableEncryption(password) if password
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption).decode()


def _cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _certificate(key, common_name, issuer=None, *, ca=False, names=()):
    """A certificate for `key`, self-signed or signed by `issuer` = (cert, key)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    issuer_name, signing_key = (issuer[0].subject, issuer[1]) if issuer else (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(names)), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


class Pki:
    """PEM texts: a CA, the server's key and certificate, clients', a stranger CA's."""

    def __init__(self):
        ca_key, other_ca_key = _key(), _key()
        ca = _certificate(ca_key, "zoo test CA", ca=True)
        other_ca = _certificate(other_ca_key, "stranger CA", ca=True)
        server_key = _key()
        server = _certificate(server_key, "localhost", (ca, ca_key), names=[
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))])
        client_key, stranger_key = _key(), _key()
        client = _certificate(client_key, "zoo client", (ca, ca_key))
        stranger = _certificate(stranger_key, "stranger client", (other_ca, other_ca_key))
        self.ca, self.other_ca = _cert_pem(ca), _cert_pem(other_ca)
        self.server_key, self.server_cert = _key_pem(server_key), _cert_pem(server)
        self.encrypted_server_key = _key_pem(server_key, b"secret")
        self.other_key = _key_pem(_key())
        self.client_key, self.client_cert = _key_pem(client_key), _cert_pem(client)
        self.stranger_key, self.stranger_cert = _key_pem(stranger_key), _cert_pem(stranger)

    def ssl_config_text(self, client_verify=False, **fields):
        config = SSLConfig(server_key=self.server_key, server_cert=self.server_cert,
                           custom_ca=self.ca, client_verify=client_verify)
        for name, value in fields.items():
            setattr(config, name, value)
        return text_format.MessageToString(config)

    def credentials(self, ca=None, client=None):
        """Client channel credentials trusting `ca` (default: ours), with a client cert."""
        key, cert = {None: (None, None), "ours": (self.client_key, self.client_cert),
                     "stranger": (self.stranger_key, self.stranger_cert)}[client]
        return grpc.ssl_channel_credentials(
            root_certificates=(ca or self.ca).encode(),
            private_key=key.encode() if key else None,
            certificate_chain=cert.encode() if cert else None,
        )


@pytest.fixture(scope="module")
def pki():
    return Pki()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    root = tmp_path_factory.mktemp("tls_models")
    sm.write_image_classifier(root, "tiny", 1)
    return root / "tiny"


def _ssl_file(folder, pki, name="ssl.config", **kwargs):
    path = folder / name
    path.write_text(pki.ssl_config_text(**kwargs))
    return path


def _server(base, **kwargs):
    kwargs.setdefault("port", 0)
    kwargs.setdefault("file_system_poll_wait_seconds", 0)
    return ModelServer(str(base), "tiny", **kwargs)


def _predict(channel):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = "tiny"
    request.inputs["image"].CopyFrom(tensors.from_ndarray(IMAGES))
    response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, timeout=30)
    return tensors.to_ndarray(response.outputs["probabilities"], "probabilities")


def _health(channel):
    answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _answers(target, credentials, options=()):
    """The server answers Health and Predict on a channel with `credentials`."""
    with grpc.secure_channel(target, credentials, options=list(options)) as channel:
        assert _health(channel)
        np.testing.assert_allclose(_predict(channel), sm.expected_probabilities(IMAGES, 1), rtol=1e-5)
    return True


def _refused(target, credentials=None, options=()):
    """The server's port takes no call on a channel with `credentials` (None: plain text)."""
    channel = (grpc.insecure_channel(target, options=list(options)) if credentials is None
               else grpc.secure_channel(target, credentials, options=list(options)))
    with channel:
        with pytest.raises(grpc.RpcError) as info:
            _health(channel)
        assert info.value.code() in REFUSED, info.value
        with pytest.raises(grpc.RpcError) as info:
            _predict(channel)
        assert info.value.code() in REFUSED, info.value
    return True


BATCHING = pytest.mark.parametrize("enable_batching", [False, True], ids=["threads", "asyncio"])


# Server-side TLS.


@pytest.fixture(scope="module", params=[False, True], ids=["threads", "asyncio"])
def tls_server(request, pki, base, tmp_path_factory):
    """A server with --ssl_config_file (client_verify false), on either gRPC server."""
    path = _ssl_file(tmp_path_factory.mktemp("ssl"), pki)
    with _server(base, ssl_config_file=str(path), enable_batching=request.param) as server:
        yield server


def test_tls_client_with_the_ca_is_answered(tls_server, pki):
    assert tls_server.tls
    assert _answers(f"localhost:{tls_server.grpc_port}", pki.credentials())


def test_plain_text_client_is_refused(tls_server):
    assert _refused(f"localhost:{tls_server.grpc_port}")


def test_client_trusting_another_ca_is_refused(tls_server, pki):
    assert _refused(f"localhost:{tls_server.grpc_port}", pki.credentials(ca=pki.other_ca))


# Mutual TLS.


@pytest.fixture(scope="module", params=[False, True], ids=["threads", "asyncio"])
def mtls_server(request, pki, base, tmp_path_factory):
    """A server whose SSLConfig has client_verify: true."""
    path = _ssl_file(tmp_path_factory.mktemp("mtls"), pki, client_verify=True)
    with _server(base, ssl_config_file=str(path), enable_batching=request.param) as server:
        yield server


def test_mutual_tls_answers_a_client_certificate_from_the_ca(mtls_server, pki):
    assert _answers(f"localhost:{mtls_server.grpc_port}", pki.credentials(client="ours"))


def test_mutual_tls_refuses_a_client_without_certificate(mtls_server, pki):
    assert _refused(f"localhost:{mtls_server.grpc_port}", pki.credentials())


def test_mutual_tls_refuses_a_certificate_from_another_ca(mtls_server, pki):
    assert _refused(f"localhost:{mtls_server.grpc_port}", pki.credentials(client="stranger"))


def test_mutual_tls_refuses_plain_text(mtls_server):
    assert _refused(f"localhost:{mtls_server.grpc_port}")


# The Unix socket, the SSLConfig given in-process, REST.


@BATCHING
def test_unix_socket_is_tls_too(pki, base, tmp_path, enable_batching):
    # TF Serving builds the socket's listener with the same credentials.
    socket_path = tmp_path / "grpc.sock"
    with _server(base, ssl_config=pki.ssl_config_text(), grpc_socket_path=str(socket_path),
                 enable_batching=enable_batching):
        target = f"unix:{socket_path}"
        assert _answers(target, pki.credentials(), options=[("grpc.ssl_target_name_override", "localhost")])
        assert _refused(target)


def test_rest_stays_plain_http_and_says_so(pki, base, tmp_path, caplog):
    path = _ssl_file(tmp_path, pki)
    with caplog.at_level(logging.WARNING, logger="serving.server"):
        with _server(base, ssl_config_file=str(path), rest_api_port=0) as server:
            rest_port = server.rest_port
            with urllib.request.urlopen(f"http://localhost:{rest_port}/v1/models/tiny", timeout=30) as r:
                assert r.status == 200
            assert _answers(f"localhost:{server.grpc_port}", pki.credentials())
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"--ssl_config_file secures gRPC only: the HTTP/REST API at localhost:{rest_port} is plain "
        "HTTP (TF Serving's REST server has no TLS either). Keep --rest_api_host on localhost, or put a "
        "TLS-terminating proxy in front of it."
    ]


def test_no_tls_without_a_config(base):
    with _server(base) as server:
        assert not server.tls
        with grpc.insecure_channel(f"localhost:{server.grpc_port}") as channel:
            assert _health(channel)


# Bad configs fail the start, naming the file.


@pytest.mark.parametrize("fields, message", [
    ({"server_key": "garbage"}, "server_key: no PEM block in it"),
    ({"server_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"},
     "server_key: not a usable PEM private key"),
    ({"server_key": "other"}, "server_key: the key does not match server_cert"),
    ({"server_key": "encrypted"}, "server_key: the key is encrypted; gRPC needs an unencrypted PEM key"),
    ({"server_cert": ""}, "server_cert: empty"),
    ({"server_cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"},
     "server_cert: not usable PEM certificates"),
    ({"custom_ca": "not a certificate"}, "custom_ca: not usable PEM certificates"),
    ({"custom_ca": "", "client_verify": True}, "custom_ca: client_verify is true, so custom_ca must hold"),
])
def test_unusable_keys_and_certificates_fail_the_start(pki, base, tmp_path, fields, message):
    fields = {k: {"other": pki.other_key, "encrypted": pki.encrypted_server_key}.get(v, v)
              for k, v in fields.items()}
    path = _ssl_file(tmp_path, pki, **fields)
    server = _server(base, ssl_config_file=str(path))
    with pytest.raises(ConfigError) as info:
        server.start()
    assert info.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert str(info.value).startswith(f"INVALID_ARGUMENT: Invalid SSL config in '{path}': {message}")
    assert server.core is None  # refused before any model was loaded


def test_a_file_name_in_place_of_the_pem_text_is_explained(pki, base, tmp_path):
    key_file = tmp_path / "server.key"
    key_file.write_text(pki.server_key)
    path = _ssl_file(tmp_path, pki, server_key=str(key_file))
    with pytest.raises(ConfigError, match=r"server_key: it names a file .*the field holds the PEM text itself"):
        _server(base, ssl_config_file=str(path)).start()


def test_console_script_names_the_malformed_ssl_config(base, tmp_path, capsys):
    bad = tmp_path / "ssl.config"
    bad.write_text('server_key: "x"\nserver_crt: "y"\n')
    assert server_main([f"--model_base_path={base}", "--port=0", f"--ssl_config_file={bad}"]) == 255
    err = capsys.readouterr().err
    assert ('Error parsing text-format tensorflow.serving.SSLConfig: 2:1: Message type '
            '"tensorflow.serving.SSLConfig" has no field named "server_crt".') in err
    assert f"Failed to start server. Error: INVALID_ARGUMENT: Invalid protobuf file: '{bad}'" in err


def test_console_script_names_a_missing_ssl_config(base, tmp_path, capsys):
    missing = tmp_path / "nope.config"
    assert server_main([f"--model_base_path={base}", "--port=0", f"--ssl_config_file={missing}"]) == 255
    assert f"Failed to start server. Error: NOT_FOUND: {missing}; No such file or directory" in capsys.readouterr().err


def test_console_script_names_an_unusable_key(pki, base, tmp_path, capsys):
    path = _ssl_file(tmp_path, pki, server_key=pki.other_key)
    assert server_main([f"--model_base_path={base}", "--port=0", f"--ssl_config_file={path}"]) == 255
    assert (f"Failed to start server. Error: INVALID_ARGUMENT: Invalid SSL config in '{path}': "
            "server_key: the key does not match server_cert") in capsys.readouterr().err


# ALTS.


def test_alts_and_ssl_together_are_refused(pki, base, tmp_path):
    path = _ssl_file(tmp_path, pki)
    with pytest.raises(ServingError, match="Only one of --use_alts_credentials and --ssl_config_file"):
        _server(base, ssl_config_file=str(path), use_alts_credentials=True).start()


@BATCHING
def test_alts_off_google_cloud_fails_the_start_saying_so(base, enable_batching):
    server = _server(base, use_alts_credentials=True, enable_batching=enable_batching)
    try:
        server.start()
    except ServingError as e:
        assert "with ALTS credentials (gRPC makes them only on Google Cloud)" in str(e)
    else:  # on Google Cloud gRPC makes them and the server runs
        server.stop()
        pytest.skip("ALTS credentials are available on this machine")

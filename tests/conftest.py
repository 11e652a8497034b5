"""Test session set-up: quiet TF, no network, two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initializes so that a
MirroredStrategy test can run two replicas on this machine; other tests place
everything on the first one, as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: the TFDS path is driven with tfds.testing.mock_data.
os.environ["ZOO_OFFLINE"] = "1"

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """A finished simple_cnn run on the offline digits set, shared by tests that need one."""
    import zoo

    out = tmp_path_factory.mktemp("runs") / "simple_cnn-digits"
    return zoo.train("simple_cnn", "digits", epochs=15, out_dir=out, verbose=0)

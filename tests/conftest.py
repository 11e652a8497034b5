"""Test session set-up: quiet TF, no network, two logical CPU devices.

The CPU is split into two logical devices before TensorFlow initializes so that a
MirroredStrategy test can run two replicas on this machine; other tests place
everything on the first one, as usual.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Tests never download: the TFDS path is driven with tfds.testing.mock_data.
os.environ["ZOO_OFFLINE"] = "1"
# Under `make test`'s processes (pytest-xdist), each runs TensorFlow's ops on its share
# of the cores, and so do the commands it starts: two processes sizing their pools to
# all the cores make twice as many busy threads as cores, spinning against each other.
_workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _workers > 1:
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(1, (os.cpu_count() or 1) // _workers)))

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


def pytest_collection_modifyitems(items):
    """The modules marked `slow(seconds)` first, longest first; the rest after, in their
    order. `make test` runs two workers a file at a time in this order (`-n 2 --dist
    loadfile --no-loadscope-reorder`; xdist would otherwise hand out the files with the
    most tests first): started first, the long files overlap each other instead of ending
    the run alone."""
    def weight(item):
        mark = item.get_closest_marker("slow")
        return -mark.args[0] if mark else 0

    items.sort(key=weight)

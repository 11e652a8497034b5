"""Writes `tf-X.Y.txt`: the op names a TF Serving X.Y model server can run.

TF Serving's model server links TensorFlow's ops and tensorflow-text's (keras-hub's
tokenizers need them) and runs with XLA off, so its ops are those that
`tensorflow==X.Y` plus `tensorflow-text==X.Y` register, less the `Xla*` / `_Xla*` ops.
`export.serving_ops` checks every export against the list of its target release.

Run it with the Python of a fresh virtual environment holding that release:

    python3 -m venv /tmp/tf-2.20 && /tmp/tf-2.20/bin/pip install -q 'tensorflow==2.20.*' 'tensorflow-text==2.20.*'
    /tmp/tf-2.20/bin/python export/serving_ops/make_op_list.py

(the project's own .venv holds the current release: `.venv/bin/python export/serving_ops/make_op_list.py`).
It writes the list beside this file, named after the installed TensorFlow's X.Y.
"""

from __future__ import annotations

import importlib.metadata
import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def registered_ops() -> list[str]:
    """Every op name registered in this process once TF and tensorflow-text are imported."""
    import tensorflow  # noqa: F401
    import tensorflow_text  # noqa: F401 - loading its op libraries registers the text ops
    from tensorflow.core.framework import op_def_pb2
    from tensorflow.python.client import pywrap_tf_session

    buffer = pywrap_tf_session.TF_GetAllOpList()
    try:
        ops = op_def_pb2.OpList.FromString(pywrap_tf_session.TF_GetBuffer(buffer))
    finally:
        pywrap_tf_session.TF_DeleteBuffer(buffer)
    return sorted({op.name for op in ops.op})


def main() -> int:
    tf_version = importlib.metadata.version("tensorflow")
    text_version = importlib.metadata.version("tensorflow-text")
    release = ".".join(tf_version.split(".")[:2])
    ops = [name for name in registered_ops() if not name.startswith(("Xla", "_Xla"))]
    path = pathlib.Path(__file__).resolve().parent / f"tf-{release}.txt"
    header = (f"# Ops of TF Serving {release}: registered by tensorflow=={tf_version} + tensorflow-text=={text_version}\n"
              f"# (pywrap_tf_session.TF_GetAllOpList), less Xla*/_Xla* (the model server runs with XLA off).\n"
              f"# Made by export/serving_ops/make_op_list.py; {len(ops)} ops.\n")
    path.write_text(header + "".join(f"{name}\n" for name in ops))
    print(f"wrote {path} ({len(ops)} ops)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

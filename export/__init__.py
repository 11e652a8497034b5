"""Export trained models as verified, versioned SavedModels for TF Serving.

    from export import export_saved_model
    path = export_saved_model("runs/simple_cnn-digits", base_path="models", model_name="digits")
    # models/digits/1/: serving_default, image_bytes, classify; warm-up; model card

`keras.export.ExportArchive` stays available beneath it; the per-task signatures are
in `export.signatures.TASKS`.
"""

import os as _os

# TensorFlow's C++ start-up chatter hides the messages a user came for (as in zoo).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from export.archive import export_saved_model  # noqa: E402
from export.cli import describe_export, format_export, is_export  # noqa: E402
from export.errors import ExportError, VerificationError  # noqa: E402
from export.fold import fold_batch_norms  # noqa: E402
from export.server_config import write_server_config  # noqa: E402

__all__ = [
    "ExportError", "VerificationError", "describe_export", "export_saved_model", "fold_batch_norms", "format_export",
    "is_export", "write_server_config",
]

"""Export trained models as verified, versioned SavedModels for TF Serving.

    from export import export_saved_model
    path = export_saved_model("runs/simple_cnn-digits", base_path="models", model_name="digits")
    # models/digits/1/: serving_default, image_bytes, classify; warm-up; model card

What the SavedModel's signatures are is the model's task's business (`zoo.tasks`);
`keras.export.ExportArchive` stays available beneath it.
"""

import os as _os

# TensorFlow's C++ start-up chatter hides the messages a user came for (as in zoo).
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from zoo.lazy import lazy_attributes  # noqa: E402

# Importing TensorFlow takes seconds; names resolve on first use.
_EXPORTS = {
    "ExportError": "export.errors",
    "VerificationError": "export.errors",
    "export_saved_model": "export.archive",
    "fold_batch_norms": "export.fold",
    "describe_export": "export.describe",
    "format_export": "export.describe",
    "is_export": "export.describe",
    # models.config and batching_parameters.txt have one writer, beside their reader.
    "write_server_config": "serving.config",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_attributes('export', _EXPORTS)

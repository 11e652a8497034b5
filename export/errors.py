"""The errors an export raises: each names the problem and the fix."""


class ExportError(ValueError):
    """An export was refused (bad argument, existing version, ...); nothing was written."""


class VerificationError(ExportError):
    """The written SavedModel does not answer like the Keras model; it was not published."""

    exit_code = 1  # the command line's exit status: a failure, not bad input

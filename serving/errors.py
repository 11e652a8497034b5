"""The one error type of the serving core: a gRPC status code and TF Serving's text.

Every transport maps it the same way: gRPC aborts with `code` and `message`, REST
answers `{"error": message}` with the HTTP status TF Serving uses for `code`.
"""

import grpc


class ServingError(Exception):
    """A request failed with a canonical status, as TF Serving reports it.

    Args:
        code: a `grpc.StatusCode` (the same numbering as `tensorflow.error.Code`).
        message: the error text, worded as TF Serving words it.

    Example:
        >>> raise ServingError(grpc.StatusCode.NOT_FOUND,
        ...                    "Servable not found for request: Latest(mnist)")
    """

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def __str__(self):
        # The way TF Serving prints a status: "INVALID_ARGUMENT: ...".
        return f"{self.code.name}: {self.message}"

    def __repr__(self):
        return f"ServingError({self.code!r}, {self.message!r})"

    @property
    def error_code(self) -> int:
        """The numeric code, as `tensorflow.error.Code` and StatusProto use it."""
        return self.code.value[0]


def code_from_int(value: int) -> grpc.StatusCode:
    """The `grpc.StatusCode` for a numeric `tensorflow.error.Code` / gRPC code."""
    for code in grpc.StatusCode:
        if code.value[0] == value:
            return code
    return grpc.StatusCode.UNKNOWN

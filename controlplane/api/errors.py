"""Typed API errors. Each carries a JSON-RPC code and a stable `error_id` clients can rely on."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    code = -32603
    error_id = "internal_error"
    message = "Internal error"

    def __init__(self, message: str | None = None, **details: Any):
        super().__init__(message or self.message)
        self.text = message or self.message
        self.details = details

    def to_error(self) -> dict:
        return {"code": self.code, "message": self.text, "data": {"error_id": self.error_id, "details": self.details}}


class ParseError(ApiError):
    code, error_id, message = -32700, "parse_error", "Parse error: the body is not valid JSON"


class InvalidRequest(ApiError):
    code, error_id, message = -32600, "invalid_request", "Invalid JSON-RPC request"


class MethodNotFound(ApiError):
    code, error_id, message = -32601, "method_not_found", "Method not found"


class InvalidParams(ApiError):
    code, error_id, message = -32602, "invalid_params", "Invalid params"


class Unauthorized(ApiError):
    code, error_id, message = -32001, "unauthorized", "Missing or unknown API token"


class Forbidden(ApiError):
    code, error_id, message = -32003, "forbidden", "Not allowed for this token"


class NotFound(ApiError):
    code, error_id, message = -32004, "not_found", "Not found"


class Conflict(ApiError):
    code, error_id, message = -32009, "conflict", "Conflicts with existing data"


class Unavailable(ApiError):
    code, error_id, message = -32010, "unavailable", "A component of the node is not reachable"


class DatabaseUnavailable(ApiError):
    code, error_id = -32011, "database_unavailable"
    message = (
        "The configuration database is not reachable; nothing was changed (routing goes on with the last snapshot)"
    )


class DatabaseReadOnly(ApiError):
    code, error_id = -32012, "database_read_only"
    message = (
        "The configuration database is read-only (its primary is down and the replica not promoted yet: "
        "`cm cluster promote-db`); nothing was changed, reading works"
    )


class TlsInvalid(ApiError):
    code, error_id = -32013, "tls_invalid"
    message = "The TLS certificate or key cannot be served; Kamailio keeps the one it has"


class InternalError(ApiError):
    pass


def component_down(component: str, exc: BaseException) -> Unavailable:
    """A node component that did not answer: the detail (its internal address, the library's message) goes to the
    control plane's log, the client gets which component and that it did not answer."""
    import logging

    logging.getLogger("callmanager.api").warning("%s did not answer: %s", component, exc)
    return Unavailable(f"{component.capitalize()} does not answer; try again shortly", component=component)


ALL_ERRORS = (
    ParseError,
    InvalidRequest,
    MethodNotFound,
    InvalidParams,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Unavailable,
    TlsInvalid,
    InternalError,
)

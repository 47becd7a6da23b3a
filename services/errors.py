"""Error answers of the services, all in one JSON shape: `{"code": ..., "message": ...}`."""

from __future__ import annotations

import json

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response

from ports.contract import INVALID_REQUEST, Refusal


class ServiceError(Exception):
    """An error answered as `{"code", "message"}` with an HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> str:
        """This error as the JSON text of an answer."""
        return json.dumps({"code": self.code, "message": self.message}, separators=(",", ":"))

    def response(self) -> Response:
        """This error as an HTTP response."""
        return Response(self.body(), self.status, media_type="application/json")


class Refused(ServiceError):
    """A business refusal: final, and recorded under the idempotency key like a success."""

    def __init__(self, refusal: Refusal, message: str) -> None:
        super().__init__(refusal.http_status, refusal.code, message)


class InjectedFault(ServiceError):
    """A failure injected on purpose to exercise the caller's retries."""

    def __init__(self) -> None:
        super().__init__(503, "InjectedFault", "fault injected by the service's fault settings")


class IdempotencyKeyReused(ServiceError):
    """The idempotency key was already used for a different request."""

    def __init__(self) -> None:
        super().__init__(
            422, "IdempotencyKeyReused", "this Idempotency-Key was used with a different request"
        )


class NotFound(ServiceError):
    """A record asked for by id does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(404, "NotFound", message)


def install_error_handlers(app: FastAPI) -> None:
    """Answer `ServiceError`s and request validation errors in the common JSON shape."""

    @app.exception_handler(ServiceError)
    async def _service_error(_request: Request, exc: ServiceError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(_request: Request, exc: RequestValidationError) -> Response:
        # Name the field and the rule, never the input: the input may be a card number or an
        # address, and FastAPI's default answer would echo it back (and into the caller's logs).
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
            for error in exc.errors()
        )
        return Refused(INVALID_REQUEST, problems).response()

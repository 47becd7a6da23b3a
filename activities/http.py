"""The HTTP client every activity calls its service with, and how service answers become errors.

- 2xx: the JSON answer.
- 4xx with a `code`: a business refusal, a non-retryable `ApplicationError` whose `type` is the
  code (one of `workflows.order_steps.REFUSALS`), so the workflow can tell refusals apart.
- 5xx, 408, 429, timeouts and connection errors: a retryable `ApplicationError` of type
  `ServiceUnavailable`; the activity's retry policy decides how often and how long to retry.
  Retrying is safe because every call carries an idempotency key.
"""

from __future__ import annotations

import json
from typing import Any

import aiohttp
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from ports.contract import CompensationInput, UndoRequest

#: `ApplicationError.type` of a transient failure: retried.
SERVICE_UNAVAILABLE = "ServiceUnavailable"

#: `ApplicationError.type` of an answer that is neither a result nor a refusal (a misrouted call,
#: a proxy's error page). Retried: it is a deployment problem, and fixing the deployment should
#: let the saga go on rather than undo it.
UNEXPECTED_RESPONSE = "UnexpectedResponse"

#: Statuses that mean "not now" rather than "no".
_TRANSIENT_CLIENT_ERRORS = frozenset({408, 429})


def create_http_client(
    *, timeout_s: float = 10.0, max_connections: int = 100
) -> aiohttp.ClientSession:
    """The `aiohttp.ClientSession` that all activities of a worker share: one connection pool.

    aiohttp rather than httpx: it costs far less CPU per call under a worker's load
    (docs/performance.md has the figures). Use it as
    `async with create_http_client() as http:` so its connections are closed; make it inside
    the event loop it serves.

    Args:
        timeout_s: Limit for a whole call, from connecting to reading the answer. Keep it below
            the activities' start-to-close timeout, so a hung call becomes a retryable error
            the activity reports, not an activity timeout.
        max_connections: Calls in flight at once; more wait for a free connection.
    """
    return aiohttp.ClientSession(
        timeout=aiohttp.ClientTimeout(total=timeout_s, connect=min(timeout_s, 5.0)),
        # Below uvicorn's 5 s keep-alive, so the client drops an idle connection before the
        # server does, instead of sending a request down a connection being closed.
        connector=aiohttp.TCPConnector(limit=max_connections, keepalive_timeout=4.0),
        headers={"User-Agent": "order-saga-activities"},
    )


class ServiceClient:
    """Mutating calls to one service, with its answers mapped to results or `ApplicationError`s."""

    def __init__(self, http: aiohttp.ClientSession, base_url: str) -> None:
        """Call the service at `base_url` (such as `http://127.0.0.1:8300/inventory`) via `http`."""
        self._http = http
        self.base_url = base_url.rstrip("/")

    async def post(self, path: str, body: BaseModel, idempotency_key: str) -> dict[str, Any]:
        """POST `body` as JSON to `path` under `idempotency_key`.

        Args:
            path: Path below the service's base URL, such as `/reservations`.
            body: The request body (its port's request model).
            idempotency_key: Sent as the `Idempotency-Key` header; a repeat has no second effect.

        Returns:
            The service's JSON answer.

        Raises:
            ApplicationError: Non-retryable, typed by the service's code, for a refusal;
                retryable otherwise (see the module's docstring).
        """
        url = f"{self.base_url}{path}"
        headers = {"Idempotency-Key": idempotency_key, "Content-Type": "application/json"}
        try:
            async with self._http.post(url, data=body.model_dump_json(), headers=headers) as answer:
                status, content = answer.status, await answer.read()
        except TimeoutError as exc:
            raise ApplicationError(f"POST {url} timed out", type=SERVICE_UNAVAILABLE) from exc
        except aiohttp.ClientError as exc:
            raise ApplicationError(
                f"POST {url} failed: {type(exc).__name__}", type=SERVICE_UNAVAILABLE
            ) from exc
        return _answer(url, status, content)

    async def compensate(self, path: str, input: CompensationInput) -> None:
        """POST a compensation: the effect key in the body, effect key + ":undo" as the key."""
        undo = UndoRequest(effect_key=input.effect_key)
        await self.post(path, undo, f"{input.effect_key}:undo")


def _answer(url: str, status: int, content: bytes) -> dict[str, Any]:
    body = _json_object(content)
    if 200 <= status < 300 and body is not None:
        return body
    code = body.get("code") if body is not None else None
    details = {"status": status, "code": code}
    if status >= 500 or status in _TRANSIENT_CLIENT_ERRORS:
        raise ApplicationError(
            f"POST {url} answered {status} {code or ''}".rstrip(),
            details,
            type=SERVICE_UNAVAILABLE,
        )
    if 400 <= status < 500 and body is not None and isinstance(code, str):
        # The service's message: written to name what was refused, never to echo card
        # numbers or addresses, so it is safe in workflow history.
        # Benign: a refusal is the business's answer, not a fault (the SDK logs it at debug).
        raise ApplicationError(
            str(body.get("message") or code),
            details,
            type=code,
            non_retryable=True,
            category=ApplicationErrorCategory.BENIGN,
        )
    raise ApplicationError(
        f"POST {url} answered {status} without a result or a refusal code",
        details,
        type=UNEXPECTED_RESPONSE,
    )


def _json_object(content: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(content)
    except ValueError:  # not JSON at all: an HTML error page, an empty body
        return None
    return body if isinstance(body, dict) else None

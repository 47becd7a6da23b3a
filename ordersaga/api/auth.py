"""Bearer tokens and the two roles of the Order API: the shop's front end, and operators."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer


class Role(StrEnum):
    """Who calls the API."""

    SHOP = "shop"
    """The shop's front end: places orders, reads them, withdraws them for the customer."""
    OPERATOR = "operator"
    """An operator: reads and lists orders, answers compensations that need attention."""


@dataclass(frozen=True)
class Tokens:
    """The bearer token of each role."""

    shop: str
    operator: str

    def role_of(self, presented: str) -> Role | None:
        """The role whose token was presented, if any (compared in constant time)."""
        for role, token in ((Role.SHOP, self.shop), (Role.OPERATOR, self.operator)):
            if hmac.compare_digest(presented.encode(), token.encode()):
                return role
        return None


#: Reads `Authorization: Bearer ...`; a missing header is ours to answer (401, not 403).
_bearer = HTTPBearer(auto_error=False, description="the shop's or an operator's token")

Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def allow(*roles: Role) -> Callable[[Request, HTTPAuthorizationCredentials | None], Role]:
    """A dependency that lets in only callers with the token of one of `roles`.

    The tokens are the app's (`app.state.tokens`). No token, or one of no role: 401. A token
    of another role: 403.
    """

    def check(request: Request, credentials: Credentials) -> Role:
        tokens: Tokens = request.app.state.tokens
        role = tokens.role_of(credentials.credentials) if credentials else None
        if role is None:
            raise HTTPException(
                401, "a valid bearer token is required", {"WWW-Authenticate": "Bearer"}
            )
        if role not in roles:
            allowed = " or ".join(r.value for r in roles)
            raise HTTPException(403, f"this needs the {allowed} token, not the {role.value} one")
        return role

    return check

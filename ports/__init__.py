"""The ports: one module per service the saga calls, each the contract its provider must meet.

A port module (`ports/payment.py`, say) defines, once, what the saga's activity and the service
behind it share: the activity's input, the request and answer on the wire, the refusals with
their HTTP status (`DOMAIN`), and a `Protocol` naming the activity and its compensation. The
stand-in service (`services/<name>.py`) and the activity (`activities/<name>.py`) both import
it; an adapter for a real provider implements the `Protocol`.

Every port's provider must keep four rules; the saga's guarantees rest on them:

1. **An idempotency key on every call.** Each forward call carries an `Idempotency-Key`
   (`<workflow id>:<step>`, the same on every retry). A repeat answers as the first call did
   and has no second effect.
2. **Undo by the forward call's key.** The undo names the forward call's key as `effect_key`
   (and carries `<effect_key>:undo` as its own key). Undoing an effect that never happened
   succeeds and does nothing: the saga undoes a step that timed out without knowing whether
   it took effect.
3. **A late forward call after its undo is refused** (`AlreadyCompensated`): a retry still in
   flight when its undo ran must not take effect afterwards.
4. **Refusals as typed codes.** A final "no" is a 4xx answer `{"code": ..., "message": ...}`
   whose code is one of the port's refusals; it is never retried and nothing is undone. Any
   other failure (5xx, 408, 429, a timeout) is retried under the same key.

`SERVICES` (every port's name, which is also its URL path, database and settings key) and
`REFUSALS` come from the port modules found here; settings, the services' app, the bench and
chaos rig, the audit and the saga's step table all derive from them.
"""

from __future__ import annotations

import importlib
import pkgutil

from ports.contract import ALREADY_COMPENSATED, INVALID_REQUEST, Domain, Refusal


class PortError(Exception):
    """A port module lacks something it must define, or clashes with another."""


def _domains() -> dict[str, Domain]:
    domains: dict[str, Domain] = {}
    for found in pkgutil.iter_modules(__path__):
        if found.name == "contract":
            continue
        domain = getattr(importlib.import_module(f"{__name__}.{found.name}"), "DOMAIN", None)
        if not isinstance(domain, Domain):
            raise PortError(f"ports/{found.name}.py defines no DOMAIN = Domain(...)")
        if domain.name != found.name:
            raise PortError(f"ports/{found.name}.py: DOMAIN is named {domain.name!r}")
        domains[domain.name] = domain
    return dict(sorted(domains.items()))


def _refusals(domains: dict[str, Domain]) -> dict[str, Refusal]:
    refusals = {
        INVALID_REQUEST.code: INVALID_REQUEST,
        ALREADY_COMPENSATED.code: ALREADY_COMPENSATED,
    }
    for domain in domains.values():
        for refusal in domain.refusals:
            if refusal.code in refusals:
                raise PortError(f"ports/{domain.name}.py: refusal {refusal.code} is defined twice")
            refusals[refusal.code] = refusal
    return refusals


#: Every port, by service name.
DOMAINS = _domains()

#: The names of the services the saga calls.
SERVICES = tuple(DOMAINS)

#: Every refusal any service may answer, by code.
REFUSALS = _refusals(DOMAINS)

__all__ = ["DOMAINS", "REFUSALS", "SERVICES", "Domain", "PortError", "Refusal"]

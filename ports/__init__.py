"""The ports: one module per service the saga calls, each the contract its provider must meet.

A port module (`ports/payment.py`, say) defines, once, what the saga's activity and the service
behind it share: the activity's input, the request and answer on the wire, the refusals with
their HTTP status (`CONTRACT`), and a `Protocol` whose two methods, the activity and its
compensation, are activity definitions: the saga calls them by method. An activity's input is
the idempotency key and the request its service takes, and nothing else. The stand-in service
(`services/<name>.py`) and the adapter (`activities/<name>.py`, a subclass of the `Protocol`)
both import it; an adapter for a real provider subclasses the `Protocol` too.

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

And one for deploys: `GET <base URL>/healthz` answers 2xx while the service can take calls. No
build of the saga gets new sagas before every service its steps call answers it
(`ops/preflight.py`).

No list of the ports is kept here: the saga's services are those its steps call, so
`workflows.order_steps` derives `SERVICES` (each port's name, which is also its URL path,
database, settings key and stand-in module) and `REFUSALS` from its rows; settings, the
services' app, the bench and chaos rig and the audit take them from there. A new port is a
module here and the row that calls it.
"""

from __future__ import annotations

from ports.contract import ALREADY_COMPENSATED, INVALID_REQUEST, Refusal, ServiceContract

__all__ = ["ALREADY_COMPENSATED", "INVALID_REQUEST", "Refusal", "ServiceContract"]

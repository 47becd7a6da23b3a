"""A hand-written order saga, as Temporal's guidance writes one: the yardstick of the bench.

What a user would write instead of adopting this project: the same four calls and undos to the
same services with the same idempotency keys, as regular activities, on the SDK's default data
converter, with none of the project's extras (events, metrics, search attributes, encryption,
the operator hook, the deadline). It shares no code with the project's saga: only the services'
HTTP API. It is a fair yardstick only if it is a correct saga, which `tests/e2e/test_peer_saga.py`
checks.
"""

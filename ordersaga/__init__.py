"""The platform the saga runs on: the connection to Temporal, the event bus, the Order API.

Also settings, the codec, the consumers, the order desk, logs, metrics and traces. It may
import the saga (`workflows`), the ports and the domain; none of them imports it
(docs/code.md, checked by `lint-imports`).
"""

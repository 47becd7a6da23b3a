"""The platform the order application runs on.

The Temporal connection and its settings, the payload codec and its keys, worker versioning,
the event bus, logs, metrics, traces, sockets and SQLite. Nothing here knows of the order desk,
the Order API or the consumers (the import contracts say so).
"""

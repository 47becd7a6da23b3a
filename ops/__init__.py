"""Operational commands (`order-saga demo`, `bench`, `chaos`, `audit`, `deploy`, ...).

With the embedded stack they run on: the outermost layer, which may start and import anything.
"""

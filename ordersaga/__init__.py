"""The order application around the saga.

Placing orders, the order desk, the Order API and its pages, and the consumers of the saga's
events (monitoring, customer notifications). It runs on the platform (`infra`) and may import
the saga (`workflows`), the ports and the domain; none of them imports it (docs/code.md,
checked by `lint-imports`).
"""

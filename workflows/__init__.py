"""Temporal workflows. Deterministic code only."""

from workflows.order_saga import OrderSaga

__all__ = ["OrderSaga"]

"""Temporal activities: thin clients of the Inventory, Payment, Shipping and Order services.

A worker makes one HTTP client and registers what `build_activities` returns:

    async with create_http_client() as http:
        worker = Worker(..., activities=build_activities(http, ServiceUrls.from_env()))

The activities take and return pydantic models, so the client and worker need
`temporalio.contrib.pydantic.pydantic_data_converter`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from activities.http import ServiceClient, create_http_client
from activities.inventory import InventoryActivities
from activities.orders import OrderActivities
from activities.payment import PaymentActivities
from activities.shipping import ShippingActivities
from ordersaga.settings import ServiceUrls

__all__ = ["ServiceClient", "build_activities", "create_http_client"]


def build_activities(http: httpx.AsyncClient, urls: ServiceUrls) -> list[Callable[..., Any]]:
    """The eight activities of the saga (four steps, four compensations), sharing `http`.

    Args:
        http: The worker's shared client, from `create_http_client()`.
        urls: Where each service is.
    """
    inventory = InventoryActivities(ServiceClient(http, urls.inventory))
    payment = PaymentActivities(ServiceClient(http, urls.payment))
    shipping = ShippingActivities(ServiceClient(http, urls.shipping))
    orders = OrderActivities(ServiceClient(http, urls.orders))
    return [
        inventory.reserve_inventory,
        payment.charge_payment,
        shipping.schedule_shipment,
        orders.confirm_order,
        inventory.release_inventory,
        payment.refund_payment,
        shipping.cancel_shipment,
        orders.cancel_order,
    ]

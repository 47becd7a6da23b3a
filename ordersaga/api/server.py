"""`order-saga api`: the Order API as a process of its own."""

from __future__ import annotations

import uvicorn

from infra.exits import StartFailure
from infra.logs import configure_logging
from infra.settings import Settings
from infra.sockets import listening_socket
from infra.temporal import connect
from ordersaga.api.app import create_api_app
from ordersaga.api.auth import Tokens

#: The Order API and its port's setting, as a start failure names them.
ORDER_API = "Order API, API_PORT"


def tokens_from(settings: Settings) -> Tokens:
    """The two roles' tokens the settings give.

    Raises:
        StartFailure: One is missing: no route of the API is open without a token.
    """
    shop, operator = settings.api_shop_token, settings.api_operator_token
    if shop is None or operator is None:
        raise StartFailure(
            "API_SHOP_TOKEN and API_OPERATOR_TOKEN (--api-shop-token, --api-operator-token) "
            "are both required: every route of the API needs a token"
        )
    if shop.get_secret_value() == operator.get_secret_value():
        raise StartFailure("API_SHOP_TOKEN and API_OPERATOR_TOKEN must differ")
    return Tokens(shop=shop.get_secret_value(), operator=operator.get_secret_value())


async def run_api(settings: Settings) -> None:
    """Serve the Order API as the settings say, until interrupted.

    Raises:
        StartFailure: A token is missing, the port is taken, or Temporal is not there.
    """
    tokens = tokens_from(settings)
    sock = listening_socket(settings.api_host, settings.api_port, ORDER_API)
    configure_logging(settings.logging_level, json=settings.log_json)
    client = await connect(settings=settings)
    app = create_api_app(client, settings.task_queue, tokens)
    # Its own request log lines replace uvicorn's, which would carry every path's order id.
    config = uvicorn.Config(
        app, host=settings.api_host, port=settings.api_port, access_log=False, log_config=None
    )
    await uvicorn.Server(config).serve(sockets=[sock])

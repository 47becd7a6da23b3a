"""Temporal activities: adapters of the ports on the stand-in services' HTTP APIs, one per port.

Each class subclasses its port (`ports/<name>.py`) and is made with a `ServiceClient` of its
service; the worker (the composition root) makes one of each, sharing one HTTP client:

    async with create_http_client() as http:
        adapter = InventoryActivities(ServiceClient(http, urls["inventory"]))

The activities take and return pydantic models, so the client and worker need
`temporalio.contrib.pydantic.pydantic_data_converter`.
"""

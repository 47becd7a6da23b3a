"""The Order API: the Order Service's HTTP way in, for a shop's checkout and its operators.

`app` maps HTTP to `ordersaga.order_desk`; `auth` holds the two roles and their bearer tokens;
`server` runs it as `order-saga api`; `pages/` are the checkout and operator pages it serves.
"""

"""Stand-in Inventory, Payment, Shipping and Order services: real HTTP, real SQLite state."""

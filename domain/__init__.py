"""The order saga's domain: what an order is, where its saga stands, what it announces.

Pure data and rules: no I/O, no clocks, no randomness. Every other package may import it, and
it imports none of them; the workflow sandbox passes it through.
"""

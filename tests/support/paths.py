"""Where the tests find the checkout they run from."""

from pathlib import Path

#: The checkout the tests run from.
ROOT = Path(__file__).resolve().parents[2]

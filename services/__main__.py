"""`python -m services`: run the stand-in services."""

from services.server import main

main()

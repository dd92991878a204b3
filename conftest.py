"""Loads the suite's pytest wiring; the work lives in the ibconform package."""

pytest_plugins = ["fixtures.evidence"]

"""Plain-Python scoring engine: no Django imports anywhere under this package."""

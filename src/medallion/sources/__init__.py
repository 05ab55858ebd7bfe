"""Clients of the source systems: each fetches records exactly as the source sends them."""

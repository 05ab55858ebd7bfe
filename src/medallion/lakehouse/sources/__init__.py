"""The extractors of the source systems: each lands records exactly as the source sends them."""

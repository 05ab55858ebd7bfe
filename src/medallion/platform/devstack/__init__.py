"""Local stand-ins of the source systems, for development, tests and the local demo."""

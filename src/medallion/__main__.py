"""``python -m medallion`` is the ``medallion`` command."""

from medallion.platform.cli import main

main()

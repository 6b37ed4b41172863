"""``python -m graphforge.cli ...``: the same as the ``graphforge`` console script."""
import sys

from graphforge.cli import main

__all__: list[str] = []

sys.exit(main())

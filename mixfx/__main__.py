"""``python -m mixfx``: the same as the ``mixfx`` command."""

from __future__ import annotations

import sys

from mixfx.cli import main

if __name__ == "__main__":
    sys.exit(main())

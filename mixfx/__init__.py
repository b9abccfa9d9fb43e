"""mixfx: the application layer of the project: the ``mixfx`` command and the demo.

The libraries (:mod:`fxdsp`, :mod:`fxdata`, :mod:`fxencoder`, :mod:`cloner`) never import this
package. :mod:`mixfx.cli` is the command line (one module per command in
:mod:`mixfx.commands`); :mod:`mixfx.demo` is the demo (``mixfx demo``).
"""

from __future__ import annotations

__all__ = ["__version__"]

__version__ = "0.1.0"

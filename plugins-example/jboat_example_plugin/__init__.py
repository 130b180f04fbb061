"""jboat-example-plugin: a third-party jboat plugin providing the CGN hyper-gradient
operator and the F2SA first-order solver.

The entry points (``[project.entry-points.jboat]`` in ``pyproject.toml``) name the modules
``jboat_example_plugin.cgn`` and ``jboat_example_plugin.f2sa``; importing them never
imports Jittor.
"""

from .cgn import CGN, CGNConfig
from .cgnr import solve_cgnr
from .f2sa import F2SA, F2SAConfig

__version__ = "0.1.0"

__all__ = ["CGN", "CGNConfig", "F2SA", "F2SAConfig", "solve_cgnr"]

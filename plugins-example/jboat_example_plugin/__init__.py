"""jboat-example-plugin: a third-party jboat plugin providing the CGN hyper-gradient operator.

The entry point (``[project.entry-points.jboat]`` in ``pyproject.toml``) names the module
``jboat_example_plugin.cgn``; importing it never imports Jittor.
"""

from .cgn import CGN, CGNConfig
from .cgnr import solve_cgnr

__version__ = "0.1.0"

__all__ = ["CGN", "CGNConfig", "solve_cgnr"]

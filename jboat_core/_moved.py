"""Old import paths of modules that moved into the core's wings (0.2), kept for one
version (until 0.3) so that plugins written against them keep loading.

============================  ==============================================
old path                      new path
============================  ==============================================
``jboat_core.autodiff``       ``jboat_core.numerics.autodiff``
``jboat_core.chain``          ``jboat_core.contract.chain``
``jboat_core.diffopt``        ``jboat_core.numerics.diffopt``
``jboat_core.firstorder``     ``jboat_core.numerics.firstorder``
``jboat_core.functional``     ``jboat_core.numerics.functional``
``jboat_core.hypergradient``  ``jboat_core.contract.operators``
``jboat_core.implicit``       ``jboat_core.numerics.implicit``
``jboat_core.linsolve``       ``jboat_core.numerics.linsolve``
``jboat_core.operators``      ``jboat_core.contract.operators``
``jboat_core.runtime``        ``jboat_core.contract.runtime``
============================  ==============================================

Importing an old path gives the new module itself (the same object: a patch of one is a
patch of the other) and a ``DeprecationWarning`` naming the new path. A plugin author
imports from ``jboat_core.contract`` and ``jboat_core.numerics`` instead (CONTRIBUTING.md).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module name (under ``jboat_core``) -> its new home.
MOVED = {
    "autodiff": "numerics.autodiff", "chain": "contract.chain",
    "diffopt": "numerics.diffopt", "firstorder": "numerics.firstorder",
    "functional": "numerics.functional", "hypergradient": "contract.operators",
    "implicit": "numerics.implicit", "linsolve": "numerics.linsolve",
    "operators": "contract.operators", "runtime": "contract.runtime",
}
_PREFIX = "jboat_core."


class _OldPaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``jboat_core.<old>`` and hands out the module at its new path."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(_PREFIX) and fullname[len(_PREFIX):] in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = _PREFIX + MOVED[spec.name[len(_PREFIX):]]
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in jboat 0.3",
                      DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        """Nothing to run: the new module is loaded already."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())

"""Old import paths, kept for one version (until 0.3) so that task files, scripts and
plugins written against them keep working.

Two kinds of moves, both answered by one import hook:

* the modules of the flat layout before the wings (0.1): ``jboat_core.runner`` (task files:
  ``from jboat_core.runner import Task``), ``jboat_core._jittor``, ``jboat_core.problem``,
  ``jboat_core.autodiff``...: each is now a module of a wing;
* the modules of 0.2's wings that moved to the compatibility wing: ``jboat_core.contract.chain``
  (API 1's helpers), ``jboat_core.solver.sequential`` and ``jboat_core.solver.solve`` (the seed
  classes, ``hypergradient_step``).

Importing an old path gives the new module itself (the same object: a patch of one is a
patch of the other) and a ``DeprecationWarning`` naming the new path and the removal
version. ``MOVED`` below is the whole table (``tests/test_compat_paths.py`` imports every
entry). New code imports the three public surfaces instead: ``jboat_core`` (users),
``jboat_core.contract`` (operator authors) and ``jboat_core.numerics`` (their helpers).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

#: Old module path (under ``jboat_core``) -> its home since 0.2.
MOVED = {
    # the flat layout of 0.1
    "_jittor": "platform._jittor", "autodiff": "numerics.autodiff",
    "chain": "compat.api1", "checkpoint": "run.checkpoint", "cli": "run.cli",
    "compare": "run.compare", "compare_worker": "run.compare_worker",
    "config": "plugins.config", "diffopt": "numerics.diffopt", "doctor": "run.doctor",
    "engine": "solver.engine", "firstorder": "numerics.firstorder",
    "functional": "numerics.functional", "hypergradient": "compat.api1",
    "implicit": "compat.api1", "kinds": "contract.kinds", "linsolve": "numerics.linsolve",
    "metadata": "contract.metadata", "metrics": "run.metrics", "onednn": "platform.onednn",
    "operators": "contract.operators", "optimstate": "numerics.optimstate",
    "ordering": "plugins.ordering", "outdir": "run.outdir", "parallel": "platform.parallel",
    "presets": "plugins.presets", "problem": "solver.problem", "registry": "plugins.registry",
    "resume": "run.resume", "runner": "run.runner", "runtime": "contract.runtime",
    "safeio": "platform.safeio", "sections": "contract.sections",
    "sequential": "compat.seed", "signals": "platform.signals", "solve": "compat.solve",
    "spec": "contract.spec", "task": "run.task", "variables": "numerics.variables",
    # 0.2's wings: what moved to the compatibility wing
    "contract.chain": "compat.api1", "solver.sequential": "compat.seed",
    "solver.solve": "compat.solve",
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
        warnings.warn(f"{spec.name} moved to {new}; the old path goes in jboat 0.3 "
                      f"(CHANGELOG.md)", DeprecationWarning, stacklevel=2)
        return importlib.import_module(new)

    def exec_module(self, module):
        """Nothing to run: the new module is loaded already."""


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _OldPaths) for f in sys.meta_path):
        sys.meta_path.insert(0, _OldPaths())

"""The compatibility wing: everything that translates JBOAT's seed API or jboat's API 1
to API 2, above the other wings (``jboat_core.contract`` imports nothing from here).

* ``jboat_core.compat.seed``: the seed's classes and functions (``jboat.na_ol.cg.CG`` is
  ``seed_class(jboat_ops.cg.CG)``; ``SequentialHG``, ``makes_functional_na_operation``,
  ``validate_and_adjust_order(custom_order, gradient_order)``, ``SequentialDS``...).
* ``jboat_core.compat.api1``: plugins written for API 1 (``compute_gradients``/``optimize``
  instead of ``step``): the registry registers ``adapt(cls)``; their helpers
  (``finished``, ``passthrough``, ``implicit_result``...).
* ``jboat_core.compat.keywords``: JBOAT's keyword form of the typed states and results.
* ``jboat_core.compat.moved``: old import paths (``jboat_core.runner``...), with a
  ``DeprecationWarning`` until 0.3.
* ``jboat_core.compat.solve``: ``hypergradient_step`` on seed-API objects.

Internal: users import ``jboat`` (JBOAT's API) or ``jboat_core``; nothing here is a public
surface of its own.
"""

from .moved import install as _serve_old_paths


def install() -> None:
    """Serve the old import paths, adapt API-1 plugins in the registry and turn the 0.1
    constructors' ``solver_config`` into a Runtime (once)."""
    from ..contract import operators
    from ..plugins import registry

    _serve_old_paths()
    if operators.LEGACY_RUNTIME is None:
        from .seed import coerce_runtime

        operators.LEGACY_RUNTIME = coerce_runtime
    if registry.API1_ADAPTER is None:
        from .api1 import adapt

        registry.API1_ADAPTER = adapt

"""JBOAT's API on jboat, for scripts written for JBOAT (``import jboat as boat``).

``jboat.Problem`` keeps JBOAT's lifecycle (``Problem(boat_config, loss_config)``,
``build_ll_solver``, ``build_ul_solver``, ``run_iter`` -> ``(loss, run_time)``);
``jboat.na_ol``, ``jboat.gm_ol`` and ``jboat.fo_ol`` keep its module paths
(``jboat.na_ol.cg.CG``, ``jboat.na_ol.sequential_hg.makes_functional_na_operation``...),
and every operator there is the registered class itself (``jboat.na_ol.cg.CG is
jboat_ops.cg.CG``). The modern API is ``jboat_core``. Importing ``jboat`` does not import
Jittor.
"""

from jboat_core import __version__

from . import fo_ol, gm_ol, na_ol, operation_registry
from .boat_opt import Problem
from .operation_registry import get_registered_operation, register_class

__all__ = ["Problem", "__version__", "fo_ol", "get_registered_operation", "gm_ol", "na_ol",
           "operation_registry", "register_class"]

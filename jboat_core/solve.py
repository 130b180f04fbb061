"""One hyper-gradient evaluation: lower-level dynamics, then the operator chain."""

from __future__ import annotations

from ._jittor import jittor
from .diffopt import DifferentiableOptimizer
from .functional import FunctionalModel


def sync_and_check(results, dynamics, extra=()) -> None:
    """Compute everything one iteration produced in a single Jittor execution, then let
    each dynamics operator check it (``finite_checks`` / ``check_finite``) without a
    second execution.

    Parameters
    ----------
    results : iterable of dict
        Terminal results; their ``hyper_gradients`` and ``ll_init_gradients`` are computed
        and checked (``upper_loss`` stays lazy unless passed in ``extra``: Jittor computes
        only what is asked for).
    dynamics : iterable of DynamicalSystem
    extra : iterable of jittor.Var
        More Vars the caller will read (e.g. the losses it records).
    """
    dynamics = list(dynamics)
    outputs = []
    for r in results:
        outputs.extend(r.get("hyper_gradients") or ())
        outputs.extend(r.get("ll_init_gradients") or ())
    checks = [v for d in dynamics for v in d.finite_checks(outputs)]
    jittor().sync(outputs + checks + list(extra))
    for d in dynamics:  # before any update: a diverged iteration changes nothing
        d.check_finite()


def hypergradient_step(chain, dynamics, ll_model, ll_opt, ll_feed_dict, ul_feed_dict,
                       current_iter: int = 0, init_gradients: bool = False):
    """Run ``dynamics`` (e.g. NGD) as ``chain`` needs it, then ``chain``.

    Parameters
    ----------
    chain : SequentialHG
    dynamics : DynamicalSystem
    ll_model : jittor.Module
        The real lower-level model (its parameters are y_0).
    ll_opt : jittor.optim.Optimizer
        The lower-level optimizer whose differentiable twin runs the inner steps.

    Returns
    -------
    (dict, FunctionalModel)
        The terminal operator's result (``hyper_gradients``, ``upper_loss``, ...) and the
        functional model holding the trajectory.
    """
    plan = chain.dynamics_plan()
    fmodel = FunctionalModel(ll_model, track=plan.track)
    dopt = DifferentiableOptimizer.from_optimizer(ll_opt, fmodel.parameters(time=0))
    max_loss_iter = dynamics.optimize(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                                      auxiliary_model=fmodel, auxiliary_opt=dopt,
                                      current_iter=current_iter, plan=plan)
    out = chain.compute_gradients(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                                  auxiliary_model=fmodel, max_loss_iter=max_loss_iter,
                                  ll_lr=dopt.lr, init_gradients=init_gradients)
    result = out[0]["gradient_operator_results"]
    sync_and_check([result], [dynamics])
    return result, fmodel

"""One hyper-gradient evaluation outside ``Problem`` on seed-API objects (a
``SequentialHG`` and dynamics instances): lower-level dynamics, then the chain, through the
runner ``Problem`` uses (``jboat_core.solver.engine``)."""

from __future__ import annotations

from ..solver.engine import evaluate_chain, sync_and_check

__all__ = ["hypergradient_step", "sync_and_check"]


def hypergradient_step(chain, dynamics, ll_model, ll_opt, ll_feed_dict, ul_feed_dict,
                       current_iter: int = 0, init_gradients: bool = False,
                       variables=None, check_finite: bool = True):
    """Run ``dynamics`` (e.g. NGD) as ``chain`` needs it, then ``chain``, and check the
    result (nothing is updated).

    Parameters
    ----------
    chain : SequentialHG
    dynamics : DynamicalSystem or list of them
    ll_model : jittor.Module
        The real lower-level model (its parameters are y_0).
    ll_opt : jittor.optim.Optimizer
        The lower-level optimizer whose differentiable twin runs the inner steps.
    variables : list of jittor.Var, optional
        The lower variables (default: every trainable parameter of ``ll_model``).
    check_finite : bool
        Raise ``DivergedError`` on a NaN/Inf result (default).

    Returns
    -------
    (Result, FunctionalModel)
        The terminal operator's ``Result`` (``hyper_gradients``, ``upper_loss``, ...; it
        also reads as JBOAT's dict: ``result["hyper_gradients"]``) and the functional
        model holding the trajectory.
    """
    dyn = list(dynamics) if isinstance(dynamics, (list, tuple)) else [dynamics]
    ev = evaluate_chain(dyn, chain.gradient_instances, chain.dynamics_plan(), ll_model, ll_opt,
                        ll_feed_dict, ul_feed_dict, current_iter, variables=variables,
                        init_gradients=init_gradients, memories=chain._memories)
    sync_and_check([ev.result], ev.checks, producer=ev.producer, check=check_finite)
    chain._memories.update(ev.memory)  # adopted once checked
    return ev.result, ev.lower.fmodel

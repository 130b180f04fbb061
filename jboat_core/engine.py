"""The one runner of a composition: what ``Problem``, ``hypergradient_step`` and the
conformance kit all call.

An outer iteration is either

* dynamics + hyper-gradient chain: a ``FunctionalModel`` of the lower model, the
  differentiable twin of the lower optimizer, the dynamics operators (NGD, GDA, DI, DM) in
  order, then the hyper-gradient chain (skipped when a dynamics operator such as DM
  provides the result itself); or
* one first-order solver (VFO...), which works on the real models.

Either way the result is a terminal dict (``upper_loss``, ``hyper_gradients`` and, by
kind, ``ll_init_gradients``, ``ll_update``, ``ll_gradients``), checked by
``sync_and_check`` in a single Jittor execution before anything is updated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ._jittor import jittor
from .diffopt import DifferentiableOptimizer
from .errors import DivergedError, OperatorRuntimeError
from .functional import FunctionalModel
from .operators import DynamicsPlan
from .registry import Registry
from .sequential import SequentialHG, makes_functional_na_operation

#: Keys of a terminal result that hold lists of Vars the solver will apply.
OUTPUT_KEYS = ("hyper_gradients", "ll_init_gradients", "ll_update", "ll_gradients")


@dataclass
class Evaluation:
    """One evaluation of a composition on one pair of feeds.

    Attributes
    ----------
    result : dict
        The terminal result.
    producer : str
        Name of the operator that produced it (for error messages).
    fmodel : FunctionalModel or None
        The functional lower model (None for first-order solvers).
    buffers : list or None
        Buffer values (BatchNorm statistics) right after the dynamics: what the real
        model receives if the solver adopts the inner loop's result.
    dopt : DifferentiableOptimizer or None
        The lower optimizer's twin after the dynamics (its state goes back to the real
        optimizer when the solver adopts y_K).
    """

    result: dict
    producer: str
    fmodel: FunctionalModel | None = None
    buffers: list | None = None
    dopt: DifferentiableOptimizer | None = None


def run_dynamics(dynamics, plan: DynamicsPlan, ll_feed_dict, ul_feed_dict, fmodel, dopt,
                 current_iter: int):
    """Run the dynamics operators in order; returns the last one's output (``max_loss_iter``
    or, for DM, its terminal result)."""
    state = dict(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                 auxiliary_model=fmodel, auxiliary_opt=dopt, current_iter=current_iter,
                 plan=plan)
    names = [type(d).name for d in dynamics]
    out = None
    for i, op in enumerate(dynamics):
        nxt = names[i + 1] if i + 1 < len(names) else None
        out = op.optimize(**state, next_operation=nxt)
        if nxt is not None:
            state = dict(out)
    return out


def evaluate_chain(dynamics, chain: SequentialHG | None, plan: DynamicsPlan, ll_model, ll_opt,
                   ll_feed_dict, ul_feed_dict, current_iter: int = 0, variables=None,
                   init_gradients: bool = False, reduce=None) -> Evaluation:
    """Dynamics then the hyper-gradient chain, on a new functional model of ``ll_model``.

    Parameters
    ----------
    dynamics : list of DynamicalSystem
    chain : SequentialHG or None
        None when the last dynamics operator provides the result (DM).
    variables : list of jittor.Var, optional
        The lower variables (default every trainable parameter of ``ll_model``).
    init_gradients : bool
        Ask the terminal operator for dF/dy_0 too (DI).
    reduce : callable, optional
        Applied to every inner step's lower gradient (the mean over processes).
    """
    fmodel = FunctionalModel(ll_model, track=plan.track, variables=variables)
    dopt = DifferentiableOptimizer.from_optimizer(ll_opt, fmodel.parameters(time=0), reduce)
    out = run_dynamics(dynamics, plan, ll_feed_dict, ul_feed_dict, fmodel, dopt, current_iter)
    buffers = [b.clone() for b in fmodel.buffers()] or None
    last = dynamics[-1]
    if chain is None:
        return Evaluation(out, type(last).name, fmodel, buffers, dopt)
    res = chain.compute_gradients(
        ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict, auxiliary_model=fmodel,
        max_loss_iter=out if isinstance(out, int) else -1, ll_lr=dopt.lr,
        lower_objective=last.lower_objective, init_gradients=init_gradients)
    return Evaluation(res[0]["gradient_operator_results"], chain.order[-1], fmodel, buffers,
                      dopt)


@dataclass
class Composition:
    """The operator instances of a validated solver config, ready to evaluate.

    Parameters
    ----------
    config : SolverConfig
    runtime : Runtime
        Handed to every operator as its ``solver_config``.
    ll_objective, ul_objective : callable
    ll_model, ul_model : jittor.Module
    registry : Registry
    """

    config: Any
    runtime: Any
    ll_objective: Any
    ul_objective: Any
    ll_model: Any
    ul_model: Any
    registry: Registry
    dynamics: list = field(default_factory=list)
    chain: SequentialHG | None = None
    first_order: Any = None
    plan: DynamicsPlan = field(default_factory=DynamicsPlan)

    def __post_init__(self):
        cfg, reg, rt = self.config, self.registry, self.runtime
        if cfg.fo_op:
            cls = reg.get(cfg.fo_op[0], kind="first_order").cls
            self.first_order = cls(self.ll_objective, self.ul_objective, self.ll_model,
                                   self.ul_model, cfg.lower_iters, rt.ll_var, rt.ul_var, rt)
            return
        self.dynamics = [reg.get(n, kind="dynamics").cls(
            self.ll_objective, self.ul_objective, self.ll_model, self.ul_model,
            cfg.lower_iters, rt) for n in cfg.gm_op]
        if not type(self.dynamics[-1]).provides_hypergradient:
            self.chain = makes_functional_na_operation(
                cfg.na_op, registry=reg, ll_objective=self.ll_objective,
                ul_objective=self.ul_objective, ll_model=self.ll_model, ul_model=self.ul_model,
                ll_var=rt.ll_var, ul_var=rt.ul_var, solver_config=rt)
        self.plan = self.chain.dynamics_plan() if self.chain else DynamicsPlan()

    @property
    def operators(self) -> list:
        """Every operator instance, in execution order."""
        if self.first_order is not None:
            return [self.first_order]
        return self.dynamics + (self.chain.gradient_instances if self.chain else [])

    @property
    def adopts_inner_result(self) -> bool:
        """False when the lower variables must not be warm-started from y_K (an operator
        keeps the initialisation, or one provides its own lower update)."""
        ops = self.operators
        return not (self.first_order is not None
                    or any(type(op).keeps_initialisation for op in ops)
                    or any(getattr(type(op), "provides_hypergradient", False) for op in ops))

    def lower_losses(self) -> list:
        return [d.lower_loss for d in self.dynamics if d.lower_loss is not None][-1:]

    def evaluate(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0,
                 init_gradients: bool = False) -> Evaluation:
        """One evaluation on one pair of feeds (nothing is updated)."""
        if self.first_order is not None:
            res = self.first_order.optimize(ll_feed_dict, ul_feed_dict, current_iter)
            return Evaluation(res, type(self.first_order).name)
        par = self.runtime.parallel
        return evaluate_chain(self.dynamics, self.chain, self.plan, self.ll_model,
                              self.runtime.ll_opt, ll_feed_dict, ul_feed_dict, current_iter,
                              variables=self.runtime.ll_var, init_gradients=init_gradients,
                              reduce=par.data_mean if par.active else None)


def _outputs(result: dict) -> list:
    out = []
    for key in OUTPUT_KEYS:
        out.extend(result.get(key) or ())
    return out


def sync_and_check(results, operators, extra=(), *, losses=(), producer: str | None = None,
                   current_iter: int | None = None, check: bool = True) -> list[float]:
    """Compute everything one iteration produced in a single Jittor execution, then check
    it before anything is updated.

    Order of the checks: each operator's own (``finite_checks`` / ``check_finite``; NGD
    names the first diverged inner step), then one probe over every output (NaN/Inf iff
    one of them is), then the upper losses. Each failure is a ``DivergedError``
    naming the operator and the outer iteration.

    Parameters
    ----------
    results : iterable of dict
        Terminal results; their ``OUTPUT_KEYS`` lists are computed and checked.
    operators : iterable
        Operator instances of the composition.
    extra : iterable of jittor.Var
        More Vars the caller will read.
    losses : iterable of jittor.Var
        One-element upper losses to read (and check) with the rest.
    producer : str, optional
        Operator named when a result or loss is not finite.
    check : bool
        False: compute only (``check_finite = false``).

    Returns
    -------
    list of float
        The values of ``losses``.
    """
    from .autodiff import vdot

    jt = jittor()
    operators = list(operators)
    outputs = [v for r in results for v in _outputs(r)]
    probe = vdot(outputs, [0.0] * len(outputs)) if (check and outputs) else None
    checks = [v for op in operators for v in op.finite_checks()] if check else []
    losses = list(losses)
    jt.sync(outputs + checks + list(extra) + losses + ([probe] if probe is not None else []))
    values = [float(v.item()) for v in losses]
    if not check:
        return values
    for op in operators:  # before any update: a diverged iteration changes nothing
        try:
            op.check_finite()
        except OperatorRuntimeError as exc:
            raise exc.at(current_iter) from None
    where = f"outer iteration {current_iter}" if current_iter is not None else "result"
    name = producer or (type(operators[-1]).name if operators else "solver")
    if probe is not None and not math.isfinite(float(probe.item())):
        raise DivergedError(name, where, "the hyper-gradient or the update it computed is "
                            "NaN/Inf although the lower loop stayed finite; check F, the "
                            "operator's settings and the step sizes")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise DivergedError(name, where, f"the upper objective F is {bad[0]} while the "
                            "gradients are finite; check F (log of 0, division by 0...)")
    return values

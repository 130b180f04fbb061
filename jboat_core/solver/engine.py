"""The one runner of a composition: what ``Problem``, the seed API's ``SequentialHG`` and
the conformance kit all call.

An outer iteration is either

* dynamics + hyper-gradient chain: a ``FunctionalModel`` of the lower model, the
  differentiable twin of the lower optimizer, the dynamics operators (NGD, GDA, DI, DM)
  stepping a ``DynamicsState`` in order, then the chain's operators stepping a
  ``ChainState`` (skipped when a dynamics operator such as DM returns the ``Result``
  itself); or
* one first-order solver (VFO...) stepping a ``SolveState``, on the real models.

Either way the outcome is an ``Outcome``: the ``Result``, what the lower variables
adopt if the iteration is kept (``LowerAdoption``), the operators' new memories and their
finiteness ``Check`` s; ``sync_and_check`` computes it in a single Jittor execution and
checks it before anything is updated. Each operator receives its memory in the state it
steps and returns the new one in what it returns (``jboat_core.contract.protocol``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..contract.kinds import KINDS
from ..contract.protocol import (NO_MEMORY, OUTPUT_FIELDS, ChainState, Check, DynamicsPlan,
                                 DynamicsState, Result, SolveState)
from ..errors import DivergedError, OperatorRuntimeError, PrecisionWarning
from ..numerics.diffopt import DifferentiableOptimizer
from ..numerics.functional import FunctionalModel
from ..numerics.tape import segment_length
from ..platform._jittor import jittor
from ..plugins.registry import Registry


@dataclass
class LowerAdoption:
    """What the real lower variables take when the solver adopts the inner loop's result
    (warm start): the values y_K, the buffers (BatchNorm statistics) after the dynamics,
    and the twin optimizer whose state the real one continues from.

    Attributes
    ----------
    variables : list of jittor.Var
        The real lower variables (``FunctionalModel.variables``).
    values : list of jittor.Var
        y_K, in that order.
    buffers : list or None
    fmodel : FunctionalModel
        Writes the buffers back (``write_back_buffers``).
    twin : DifferentiableOptimizer or None
    """

    variables: list
    values: list
    buffers: list | None
    fmodel: Any
    twin: Any = None


@dataclass
class Outcome:
    """One evaluation of a composition on one pair of feeds.

    Attributes
    ----------
    result : Result
        The terminal result.
    producer : str
        Name of the operator that produced it (for error messages).
    lower : LowerAdoption or None
        The lower variables' new values if the solver warm-starts (None for first-order
        solvers).
    lower_loss : jittor.Var or None
        f at the last inner step, or the result's own.
    chain_state : ChainState or None
        What the terminal operator received: its lower point (``ll_point()``) and k*.
    memory : dict
        Operator name -> the memory it returned (adopted only if the iteration is kept).
    checks : list of Check
        The operators' own finiteness probes.
    """

    result: Result
    producer: str
    lower: LowerAdoption | None = None
    lower_loss: Any = None
    chain_state: Any = None
    memory: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)


def step_operator(op, state, memories: Mapping, pending: dict):
    """``op.step(state)`` with ``op``'s memory in the state; what it returns, with the
    new memory it carries recorded in ``pending`` (by operator name)."""
    name = type(op).name
    mem = memories.get(name, NO_MEMORY)
    if state.memory is not mem:
        state = state.replace(memory=mem)
    legacy = op.__dict__  # API 2 before 0.2: self.state / self.propose (deprecated)
    legacy["_legacy_memory"] = mem
    try:
        out = op.step(state)
    finally:
        legacy.pop("_legacy_memory", None)
    new = getattr(out, "memory", None)
    if new is not None and new is not mem and new is not NO_MEMORY:
        pending[name] = new
    proposed = legacy.pop("_legacy_proposed", None)
    if proposed:
        pending[name] = {**pending.get(name, mem), **proposed}
    return out


def run_dynamics(dynamics, state: DynamicsState, memories: Mapping = NO_MEMORY,
                 pending: dict | None = None) -> DynamicsState | Result:
    """The dynamics operators in order on ``state``; returns the last one's output (the
    state for the chain, or DM's ``Result``)."""
    pending = {} if pending is None else pending
    names = [type(d).name for d in dynamics]
    out: DynamicsState | Result = state
    for i, op in enumerate(dynamics):
        nxt = names[i + 1] if i + 1 < len(names) else None
        if isinstance(out, Result):
            raise OperatorRuntimeError(names[i - 1], "dynamics", f"returned a Result but "
                                       f"{op.name} follows; only the last dynamics operator "
                                       "may end the iteration")
        out = step_operator(op, out.replace(next_operation=nxt), memories, pending)
        if not isinstance(out, (DynamicsState, Result)):
            raise OperatorRuntimeError(op.name, "dynamics", f"returned {type(out).__name__}; "
                                       "step returns the DynamicsState (state.replace(...)) "
                                       "or a Result")
    return out


def run_chain(chain, state: ChainState, memories: Mapping = NO_MEMORY,
              pending: dict | None = None) -> tuple[Result, ChainState]:
    """The chain's operators on ``state``: each modifier's ``ChainState`` goes to the next
    operator; returns the terminal one's ``Result`` and the state it received."""
    pending = {} if pending is None else pending
    names = [type(op).name for op in chain]
    out: ChainState | Result = state
    last = state
    for idx, op in enumerate(chain):
        nxt = names[idx + 1] if idx + 1 < len(names) else None
        last = out.replace(next_operation=nxt)
        out = step_operator(op, last, memories, pending)
        if nxt is not None and not isinstance(out, ChainState):
            raise OperatorRuntimeError(
                type(op).name, "chain", f"returned {type(out).__name__} but {nxt} follows; "
                "a modifier returns the next operator's ChainState (state.replace(...))")
        if nxt is None and not isinstance(out, Result):
            raise OperatorRuntimeError(
                type(op).name, "chain", f"is last in the chain but returned "
                f"{type(out).__name__}, not a Result (jboat_core.contract.result(...))")
    return out, last


def dynamics_plan(chain, record_loss: bool = False) -> DynamicsPlan:
    """What the chain needs from the lower-level dynamics (tracking, PTT, FOA, RGT): every
    operator's ``configure_dynamics``, merged."""
    plan = DynamicsPlan(record_loss=record_loss)
    for op in chain:
        plan = type(op).configure_dynamics(plan, op.config)
    return plan


def evaluate_chain(dynamics, chain, plan: DynamicsPlan, ll_model, ll_opt, ll_feed_dict,
                   ul_feed_dict, current_iter: int = 0, variables=None,
                   init_gradients: bool = False, reduce=None, memories: Mapping = NO_MEMORY,
                   ll_objective=None) -> Outcome:
    """Dynamics then the hyper-gradient chain, on a new functional model of ``ll_model``.

    Parameters
    ----------
    dynamics : list of DynamicalSystem
    chain : list of HyperGradient or None
        None when the last dynamics operator provides the result (DM).
    variables : list of jittor.Var, optional
        The lower variables (default every trainable parameter of ``ll_model``).
    init_gradients : bool
        Ask the terminal operator for dF/dy_0 too (DI).
    reduce : callable, optional
        Applied to every inner step's lower gradient (the mean over processes).
    memories : mapping
        Operator name -> its adopted memory.
    ll_objective : callable, optional
        f, for the chain when the dynamics did not set the objective they descended.
    """
    fmodel = FunctionalModel(ll_model, track=plan.track and not plan.checkpoint_every,
                             variables=variables)
    dopt = DifferentiableOptimizer.from_optimizer(ll_opt, fmodel.parameters(time=0), reduce)
    pending: dict = {}
    out = run_dynamics(dynamics, DynamicsState(ll_feed_dict, ul_feed_dict, fmodel, dopt, plan,
                                               int(current_iter)), memories, pending)
    buffers = [b.clone() for b in fmodel.buffers()] or None
    lower = LowerAdoption(fmodel.variables, fmodel.parameters(), buffers, fmodel, dopt)
    if isinstance(out, Result):
        return Outcome(out, type(dynamics[-1]).name, lower, out.lower_loss, None, pending,
                          list(out.checks))
    if chain is None:
        raise OperatorRuntimeError(type(dynamics[-1]).name, "dynamics", "declares "
                                   "provides_hypergradient but returned no Result")
    start = ChainState(out.ll_feed, out.ul_feed, fmodel,
                       ll_objective=out.ll_objective or ll_objective or
                       dynamics[-1].ll_objective, ll_lr=dopt.lr, k_star=out.k_star,
                       init_gradients=init_gradients, current_iter=out.current_iter,
                       tangents=out.tangents, optimality=out.optimality)
    res, last = run_chain(chain, start, memories, pending)
    return Outcome(res, type(chain[-1]).name, lower,
                      out.lower_loss if out.lower_loss is not None else res.lower_loss, last,
                      pending, [*out.checks, *res.checks])


@dataclass
class Composition:
    """The operator instances of a validated solver config, ready to evaluate.

    Every kind is built the same way, in one loop over ``KINDS``:
    ``cls.build(runtime)`` for each name of the kind's config key (already ordered and
    validated by ``SolverConfig``).

    Parameters
    ----------
    config : SolverConfig
    runtime : Runtime
        Every operator is built from it (objectives, models, variables, optimizers,
        sections).
    registry : Registry
    record_loss : bool
        Keep the last inner step's lower objective (the solver's history).
    """

    config: Any
    runtime: Any
    registry: Registry
    record_loss: bool = False
    dynamics: list = field(default_factory=list)
    chain: list | None = None
    solver: Any = None
    plan: DynamicsPlan = field(default_factory=DynamicsPlan)

    def __post_init__(self):
        cfg, reg, rt = self.config, self.registry, self.runtime
        built = {kind.name: [reg.get(n, kind=kind.name).cls.build(rt)
                             for n in getattr(cfg, kind.config_key) or ()]
                 for kind in KINDS.values()}
        self.dynamics = built["dynamics"]
        self.solver = (built["first_order"] or [None])[0]
        if self.solver is not None:
            return
        if not type(self.dynamics[-1]).provides_hypergradient:
            self.chain = built["hypergradient"]
        self.plan = (dynamics_plan(self.chain, self.record_loss) if self.chain
                     else DynamicsPlan(record_loss=self.record_loss))
        every = segment_length(getattr(cfg, "checkpoint_every", 0), cfg.lower_iters)
        if every and self.plan.track:
            self.plan = self.plan.replace(checkpoint_every=every)

    @property
    def operators(self) -> list:
        """Every operator instance, in execution order."""
        if self.solver is not None:
            return [self.solver]
        return self.dynamics + (self.chain or [])

    @property
    def adopts_inner_result(self) -> bool:
        """False when the lower variables must not be warm-started from y_K (an operator
        keeps the initialisation, or one provides its own lower update)."""
        ops = self.operators
        return not (self.solver is not None
                    or any(type(op).keeps_initialisation for op in ops)
                    or any(getattr(type(op), "provides_hypergradient", False) for op in ops))

    def evaluate(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0,
                 init_gradients: bool = False, memories: Mapping = NO_MEMORY) -> Outcome:
        """One evaluation on one pair of feeds (nothing is updated)."""
        if self.solver is not None:
            pending: dict = {}
            res = step_operator(self.solver, SolveState(ll_feed_dict, ul_feed_dict,
                                                        int(current_iter)), memories, pending)
            if not isinstance(res, Result):
                raise OperatorRuntimeError(type(self.solver).name, "result",
                                           f"step returned {type(res).__name__}, not a Result")
            return Outcome(res, type(self.solver).name, lower_loss=res.lower_loss,
                              memory=pending, checks=list(res.checks))
        par = self.runtime.parallel
        return evaluate_chain(self.dynamics, self.chain, self.plan, self.runtime.ll_model,
                              self.runtime.ll_opt, ll_feed_dict, ul_feed_dict, current_iter,
                              variables=self.runtime.ll_var, init_gradients=init_gradients,
                              reduce=par.data_mean if par.active else None, memories=memories,
                              ll_objective=self.runtime.ll_objective)


def _outputs(result) -> list:
    out = []
    for key in OUTPUT_FIELDS:
        out.extend(result.get(key) or ())
    return out


def memory_probe(memory: Mapping, producer: str) -> Check | None:
    """A ``Check`` that a new memory is finite (one reduction per tensor)."""
    from ..numerics.autodiff import vdot

    values = [v for vs in memory.values() for v in vs]
    if not values:
        return None
    names = ", ".join(memory)
    return Check(vdot(values, [0.0] * len(values)),
                 lambda: DivergedError(producer, "memory", f"the new {names} is NaN/Inf; "
                                       "lower the step sizes of the method's config section"))


def sync_and_check(results, checks=(), extra=(), *, losses=(), producer: str | None = None,
                   current_iter: int | None = None, check: bool = True) -> list[float]:
    """Compute everything one iteration produced in a single Jittor execution, then check
    it before anything is updated.

    Order of the checks: the operators' own ``Check`` s (NGD names the first diverged inner
    step; a new memory that is NaN/Inf names its operator), then one probe over every
    output (NaN/Inf iff one of them is), then the upper losses. Each failure is a
    ``DivergedError`` naming the operator and the outer iteration.

    Parameters
    ----------
    results : iterable of Result or dict
        Terminal results; their ``OUTPUT_FIELDS`` lists are computed and checked.
    checks : iterable of Check
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
    from ..numerics.autodiff import vdot

    jt = jittor()
    outputs = [v for r in results for v in _outputs(r)]
    probe = vdot(outputs, [0.0] * len(outputs)) if (check and outputs) else None
    checks = [c for c in checks if c is not None] if check else []
    losses = list(losses)
    jt.sync(outputs + [c.probe for c in checks] + list(extra) + losses
            + ([probe] if probe is not None else []))
    values = [float(v.item()) for v in losses]
    if not check:
        return values
    for c in checks:  # before any update: a diverged iteration changes nothing
        if not math.isfinite(float(c.probe.item())):
            exc = c.explain()
            raise (exc.at(current_iter) if isinstance(exc, OperatorRuntimeError) else exc)
    where = f"outer iteration {current_iter}" if current_iter is not None else "result"
    name = producer or "solver"
    if probe is not None and not math.isfinite(float(probe.item())):
        raise DivergedError(name, where, "the hyper-gradient or the update it computed is "
                            "NaN/Inf although the lower loop stayed finite; check F, the "
                            "operator's settings and the step sizes")
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise DivergedError(name, where, f"the upper objective F is {bad[0]} while the "
                            "gradients are finite; check F (log of 0, division by 0...)")
    return values


def warn_lower_precision(variables, *, upper=None, lower=None) -> None:
    """A ``PrecisionWarning`` when the variables are float64 but F (``upper``) or f
    (``lower``, f at the last inner step) came out float32."""
    if not any(v.dtype == "float64" for v in variables):
        return
    low = [name for name, value in (("F (the upper objective)", upper),
                                    ("f (the lower objective)", lower))
           if value is not None and value.dtype in ("float32", "float16")]
    if low:
        warnings.warn(
            f"{' and '.join(low)} returned float32 for float64 variables: part of it "
            "computes in float32 (a cast, a float32 Var or constant in the objective). "
            "Keep every Var float64, and write numbers float32 does not hold as Vars: "
            "`jboat_core.constant(0.01, like=v)`", PrecisionWarning, stacklevel=4)

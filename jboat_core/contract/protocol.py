"""What an operator receives and returns (API 2), as frozen types. Importing this module
does not import Jittor.

One outer iteration, as data::

    DynamicsState --dynamics.step--> DynamicsState ... --(solver)--> ChainState
    ChainState --modifier.step--> ChainState ... --terminal.step--> Result
    SolveState --first_order.step--> Result

* A **dynamics** operator (NGD, GDA, DI, DM) receives a ``DynamicsState`` and returns it
  updated (``state.replace(...)``) for the next dynamics operator or the chain, or a
  ``Result`` when it computes the hyper-gradient itself (``provides_hypergradient``, DM).
* A **hyper-gradient** operator receives a ``ChainState``. A modifier (PTT, FOA, RGT, IAD
  before CG) returns the next operator's ``ChainState``; a terminal one (RAD, CG...)
  returns a ``Result`` (``result(op, ...)`` checks the shapes).
* A **first-order** solver receives a ``SolveState`` and returns a ``Result``.

Every state carries the feeds (``ll_feed``, ``ul_feed``), the outer iteration
(``current_iter``) and the operator's **memory**: what it kept from the last iteration it
ran (a mapping of names to lists of Vars; empty the first time). To keep something for
the next iteration, an operator returns it in the ``memory`` field of what it returns
(``result(..., memory={"v": v})`` or ``state.replace(memory={...})``); the solver adopts it
only when the iteration passed its finiteness checks, and checkpoints save it. An
operator keeps nothing on ``self``. Finiteness probes of its own (NGD names the first
diverged inner step) go in ``checks``.

Naming: ``ll_``/``ul_`` for what belongs to a level (feeds, variables, objectives, the
lower learning rate, the lower update); ``upper_loss``/``lower_loss`` keep JBOAT's keys.
JBOAT's keyword form of these types (the seed API, API 1) is in ``jboat_core.compat``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import OperatorRuntimeError

class _NoMemory(Mapping):
    """The empty, read-only memory (one instance, ``NO_MEMORY``)."""

    def __getitem__(self, key):
        raise KeyError(key)

    def __iter__(self):
        return iter(())

    def __len__(self) -> int:
        return 0

    def __hash__(self) -> int:
        return 0

    def __repr__(self) -> str:
        return "NO_MEMORY"


#: The empty memory (read-only): what an operator receives the first time.
NO_MEMORY: Mapping = _NoMemory()

#: Fields renamed in 0.2 (old name -> new name); the old names work until 0.3.
_RENAMED = {"first_order": "stop_inner_grads", "lower_objective": "ll_objective"}


def _replace(obj, changes: dict):
    """A copy of the frozen dataclass ``obj`` with ``changes`` (fields only, old names
    mapped with a ``DeprecationWarning``)."""
    for old, new in _RENAMED.items():
        if old in changes and new in obj.__dataclass_fields__:
            warnings.warn(f"{type(obj).__name__}.replace({old}=...) is now {new}=...; the old "
                          "name goes in jboat 0.3", DeprecationWarning, stacklevel=3)
            changes[new] = changes.pop(old)
    unknown = set(changes) - obj.__dataclass_fields__.keys()
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


def _renamed(cls_name: str, old: str, new: str):
    """A read-only property ``old`` returning ``new``, with a ``DeprecationWarning``."""
    def get(self):
        warnings.warn(f"{cls_name}.{old} is now {cls_name}.{new}; the old name goes in "
                      "jboat 0.3", DeprecationWarning, stacklevel=2)
        return getattr(self, new)
    return property(get)


Objective = Callable[..., Any]
"""``objective(ll_feed_dict, ul_model, ll_model, **kw) -> scalar Var``: f, F, or an
aggregation such as GDA's phi_alpha (``kw`` carries ``params=[...]``)."""


@dataclass(frozen=True)
class Check:
    """A finiteness probe an operator adds to what it returns (``checks``).

    Attributes
    ----------
    probe : jittor.Var
        One element, NaN/Inf exactly when what it watches is (e.g. ``vdot(xs, 0 * xs)``);
        computed with the iteration's results, in the same Jittor execution.
    explain : callable
        ``explain() -> Exception``: called only when the probe is not finite, returns the
        error to raise (it may replay work to name the first bad step).
    """

    probe: Any
    explain: Callable[[], Exception]


@dataclass(frozen=True)
class DynamicsPlan:
    """What the hyper-gradient chain asks of the lower-level dynamics (built by the solver
    from every chain operator's ``configure_dynamics``; the dynamics never look for
    operator names).

    Attributes
    ----------
    track : bool
        Keep the differentiable trajectory y_0..y_K (memory O(K)); else O(1).
    pessimistic : bool
        Evaluate F(x, y_k) after every step and report k* = argmax_k F (PTT).
    stop_inner_grads : bool
        Stop gradients through the inner gradients: y_{k+1} = y_k - eta sg(grad f) (FOA).
    truncate : int
        Number of leading steps taken outside the graph (RGT).
    record_loss : bool
        Keep the lower objective of the last inner step as ``lower_loss``.
    checkpoint_every : int
        With ``track``: keep only every s-th inner state and recompute each segment in the
        reverse pass (memory O(K/s + s)); 0: the whole trajectory.
    forward_mode : bool
        Carry the tangents dy_k/dx alongside the inner loop (FMD).
    forward_limit : int
        The most upper scalars forward mode accepts (FMD's ``max_scalars``).
    """

    track: bool = False
    pessimistic: bool = False
    stop_inner_grads: bool = False
    truncate: int = 0
    record_loss: bool = False
    checkpoint_every: int = 0
    forward_mode: bool = False
    forward_limit: int = 256

    first_order = _renamed("DynamicsPlan", "first_order", "stop_inner_grads")

    def replace(self, **changes) -> "DynamicsPlan":
        """A copy with ``changes``."""
        return _replace(self, changes)

    def merge(self, other: "DynamicsPlan") -> "DynamicsPlan":
        """What both ask for: any flag either sets, the longer truncation."""
        return DynamicsPlan(self.track or other.track, self.pessimistic or other.pessimistic,
                            self.stop_inner_grads or other.stop_inner_grads,
                            max(self.truncate, other.truncate),
                            self.record_loss or other.record_loss,
                            max(self.checkpoint_every, other.checkpoint_every),
                            self.forward_mode or other.forward_mode,
                            min(self.forward_limit, other.forward_limit))


def aggregated(gda_loss: Callable, alpha: float, ul_feed_dict) -> Objective:
    """phi_alpha as an objective ``(ll_feed_dict, ul_model, ll_model, **kw)``: the user's
    ``gda_loss(ll_feed_dict, ul_feed_dict, ul_model, ll_model, **kw)`` with ``alpha`` in a
    copy of the lower feed dict (as upstream reads it; the user's dict is not touched)."""
    def phi(ll_feed_dict, ul_model, ll_model, **kw):
        return gda_loss({**ll_feed_dict, "alpha": alpha}, ul_feed_dict, ul_model, ll_model, **kw)
    return phi


@dataclass(frozen=True)
class DynamicsState:
    """What a dynamics operator receives, and returns updated.

    Attributes
    ----------
    ll_feed, ul_feed : dict
        This iteration's lower and upper feeds.
    fmodel : FunctionalModel
        Functional copy of the lower model; the inner loop writes its iterates here.
    dopt : DifferentiableOptimizer
        Differentiable twin of the user's lower optimizer.
    plan : DynamicsPlan
        What the chain needs (tracking, PTT, FOA, RGT).
    current_iter : int
        The outer iteration.
    memory : mapping
        What this operator kept from its last iteration (empty at first).
    aggregate : callable or None
        GDA's aggregated objective ``gda_loss(ll_feed, ul_feed, ul_model, ll_model, **kw)``
        (set by GDA); the inner steps then descend phi_{alpha_k}.
    alpha_at : callable or None
        ``k -> alpha_k``, GDA's schedule over the inner steps.
    k_star : int
        Set by the inner loop: k* of PTT (``plan.pessimistic``), else -1 (the last step).
    lower_loss : jittor.Var or None
        Set by the inner loop: f at the last inner step (``plan.record_loss``).
    ll_objective : callable or None
        Set by the inner loop: the lower objective at the point the chain evaluates (GDA's
        phi at that step's alpha); None: the user's f.
    tangents : Tangents or None
        Set by the inner loop with ``plan.forward_mode``: dy_K/dx per upper scalar.
    next_operation : str or None
        Name of the next dynamics operator (None: this one is the last).
    checks : tuple of Check
        Finiteness probes added by the operators that ran.
    optimality : Optimality or None
        Set by the inner loop: the condition y_K approximates
        (``jboat_core.contract.Optimality``: NGD's gradient step, PGD's proximal fixed
        point, a user solver's root); None: the gradient form, grad_y f = 0.
    """

    ll_feed: Any
    ul_feed: Any
    fmodel: Any
    dopt: Any
    plan: DynamicsPlan = field(default_factory=DynamicsPlan)
    current_iter: int = 0
    memory: Mapping = NO_MEMORY
    aggregate: Callable | None = None
    alpha_at: Callable[[int], float] | None = None
    k_star: int = -1
    lower_loss: Any = None
    ll_objective: Objective | None = None
    tangents: Any = None
    next_operation: str | None = None
    checks: tuple = ()
    optimality: Any = None

    lower_objective = _renamed("DynamicsState", "lower_objective", "ll_objective")

    def replace(self, **changes) -> "DynamicsState":
        """A copy with ``changes`` (states are frozen)."""
        return _replace(self, changes)

    def objective_at(self, k: int, ll_objective: Objective) -> Objective:
        """The objective of inner step ``k``: ``ll_objective``, or phi_{alpha_k} after GDA."""
        if self.aggregate is None:
            return ll_objective
        return aggregated(self.aggregate, self.alpha_at(k), self.ul_feed)


@dataclass(frozen=True)
class ChainState:
    """What a hyper-gradient operator receives; a modifier returns the next one's.

    Attributes
    ----------
    ll_feed, ul_feed : dict
    fmodel : FunctionalModel
        The lower model after the dynamics: ``fmodel.parameters()`` is y_K,
        ``parameters(time=k)`` y_k (when tracked), ``parameters(time=0)`` y_0.
    ll_objective : callable
        The lower objective to differentiate: the one the dynamics descended (GDA's phi
        at the evaluated step), else the user's f.
    ll_lr : float or None
        eta, the lower learning rate of the inner loop.
    k_star : int
        PTT's k* (>= 1) when the dynamics were pessimistic, else -1.
    point : tuple of jittor.Var or None
        The lower point to evaluate at, set by a modifier (PTT: y_{k*}); None: y_K.
    wrt : tuple of jittor.Var or None
        The variables to differentiate, set by a modifier (IAD before CG/NS: y_0);
        None: the upper variables.
    init_gradients : bool
        DI asks the terminal operator for dF/dy_0 too (``Result.ll_init_gradients``).
    current_iter : int
    memory : mapping
        What this operator kept from its last iteration (empty at first).
    tangents : Tangents or None
        dy_K/dx per upper scalar when the dynamics ran in forward mode (FMD).
    next_operation : str or None
        The next operator's name (None: this one ends the chain).
    optimality : Optimality or None
        The condition the dynamics declared y_K approximates (what implicit operators
        differentiate); None: the gradient form, grad_y f = 0 with f = ``ll_objective``.
    """

    ll_feed: Any
    ul_feed: Any
    fmodel: Any
    ll_objective: Objective | None = None
    ll_lr: float | None = None
    k_star: int = -1
    point: tuple | None = None
    wrt: tuple | None = None
    init_gradients: bool = False
    current_iter: int = 0
    memory: Mapping = NO_MEMORY
    tangents: Any = None
    next_operation: str | None = None
    optimality: Any = None

    lower_objective = _renamed("ChainState", "lower_objective", "ll_objective")

    def replace(self, **changes) -> "ChainState":
        """A copy with ``changes`` (what a modifier returns)."""
        for key in ("point", "wrt"):
            if changes.get(key) is not None:
                changes[key] = tuple(changes[key])
        return _replace(self, changes)

    def ll_point(self) -> list:
        """The lower point to evaluate at: ``point``, else y_K."""
        return list(self.point) if self.point is not None else self.fmodel.parameters()

    # -- names of API 2 before 0.2, kept until 0.3 -------------------------------------
    def lower_point(self) -> list:
        """Deprecated: ``ll_point()``."""
        warnings.warn("ChainState.lower_point() is now ll_point(); the old name goes in "
                      "jboat 0.3", DeprecationWarning, stacklevel=2)
        return self.ll_point()

    def objective(self, op) -> Objective:
        """Deprecated: ``state.ll_objective`` (always set by the solver)."""
        warnings.warn("ChainState.objective(op) is now the field ll_objective; the method "
                      "goes in jboat 0.3", DeprecationWarning, stacklevel=2)
        return self.ll_objective or op.ll_objective

    def lower_lr(self, op) -> float:
        """Deprecated: ``state.ll_lr`` (always set by the solver)."""
        warnings.warn("ChainState.lower_lr(op) is now the field ll_lr; the method goes in "
                      "jboat 0.3", DeprecationWarning, stacklevel=2)
        return require_ll_lr(op, self.ll_lr)


@dataclass(frozen=True)
class SolveState:
    """What a first-order solver receives.

    Attributes
    ----------
    ll_feed, ul_feed : dict
    current_iter : int
    memory : mapping
        What this solver kept from its last iteration (empty at first).
    """

    ll_feed: Any
    ul_feed: Any
    current_iter: int = 0
    memory: Mapping = NO_MEMORY

    def replace(self, **changes) -> "SolveState":
        """A copy with ``changes``."""
        return _replace(self, changes)


@dataclass(frozen=True)
class Result:
    """What one outer iteration computed: the terminal operator's output.

    Attributes
    ----------
    upper_loss : jittor.Var
        F at the evaluated point (one element).
    hyper_gradients : list of jittor.Var
        One per upper variable, its shape: applied by the upper optimizer.
    ll_init_gradients : list of jittor.Var or None
        dF/dy_0, one per lower variable (DI): applied to the initialisation.
    ll_update : list of jittor.Var or None
        New values of the lower variables (DM, first-order solvers), written first.
    ll_gradients : list of jittor.Var or None
        Directions for the lower optimizer (first-order solvers), applied after
        ``ll_update``.
    lower_loss : jittor.Var or None
        f at the evaluated point, for the history.
    ul_lr : float or None
        The upper learning rate for this iteration's step (DM's schedule); None: the
        optimizer's own.
    memory : mapping or None
        What the operator keeps for its next iteration (None: what it had stays).
    checks : tuple of Check
        The operator's own finiteness probes.
    info : mapping
        Plain data about the step for the user (a stochastic solver's draws and oracle
        calls): in the iteration record, not in the history.
    """

    upper_loss: Any
    hyper_gradients: list
    ll_init_gradients: list | None = None
    ll_update: list | None = None
    ll_gradients: list | None = None
    lower_loss: Any = None
    ul_lr: float | None = None
    memory: Mapping | None = None
    checks: tuple = ()
    info: Mapping = NO_MEMORY

    def get(self, key: str, default=None):
        """A field by name (``None`` for an absent one), as from JBOAT's dict."""
        value = getattr(self, key, None) if key in RESULT_FIELDS else None
        return default if value is None else value

    def __getitem__(self, key: str):
        if key not in RESULT_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def replace(self, **changes) -> "Result":
        """A copy with ``changes``."""
        return _replace(self, changes)


#: The fields of a result that hold values of the iteration (JBOAT's terminal dict keys).
RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Result)
                                       if f.name not in ("memory", "checks", "info"))
#: The result fields that hold lists of Vars the solver applies.
OUTPUT_FIELDS: tuple[str, ...] = ("hyper_gradients", "ll_init_gradients", "ll_update",
                                  "ll_gradients")


def require_ll_lr(op, ll_lr=None) -> float:
    """eta, the lower-level learning rate: ``ll_lr``, else the runtime's lower optimizer's;
    ``OperatorRuntimeError`` naming ``op`` if neither."""
    if ll_lr is not None:
        return float(ll_lr)
    if op.runtime.ll_lr is not None:
        return op.runtime.ll_lr
    raise OperatorRuntimeError(type(op).name, "config", "needs the lower-level learning rate: "
                               "give the problem a lower optimizer (ll_opt)")


def result(op, upper_loss, hyper_gradients, ll_init_gradients=None, **more) -> Result:
    """A terminal ``Result`` of a hyper-gradient operator, checked: one gradient per upper
    variable, each of its shape (``more``: other ``Result`` fields, e.g. ``memory=``)."""
    grads = list(hyper_gradients)
    name = type(op).name
    if len(grads) != len(op.ul_var):
        raise OperatorRuntimeError(name, "result", f"computed {len(grads)} hyper-gradients "
                                   f"for {len(op.ul_var)} upper-level variables")
    for i, (g, x) in enumerate(zip(grads, op.ul_var)):
        if list(g.shape) != list(x.shape):
            raise OperatorRuntimeError(name, "result", f"hyper-gradient {i} has shape "
                                       f"{list(g.shape)} but ul_var[{i}] has {list(x.shape)}; "
                                       "the differentiated variables do not mirror ul_var")
    return Result(upper_loss, grads, ll_init_gradients, **more)


def to_upper(op, wrt, gradients) -> list:
    """Gradients with respect to ``wrt`` (e.g. y_0 after IAD) in ``op.ul_var``'s order: by
    identity when ``wrt`` holds exactly the upper variables (the same model at both
    levels), else positionally (``result`` then checks the shapes)."""
    index = {id(v): i for i, v in enumerate(wrt)}
    if len(wrt) == len(op.ul_var) and all(id(x) in index for x in op.ul_var):
        return [gradients[index[id(x)]] for x in op.ul_var]
    return list(gradients)

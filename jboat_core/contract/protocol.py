"""The step protocol between operators (API version 2): what an operator receives and
what it returns, as frozen types. Importing this module does not import Jittor.

One outer iteration, as data::

    DynamicsState --dynamics.step--> DynamicsState ... --(core)--> ChainState
    ChainState --modifier.step--> ChainState ... --terminal.step--> Result
    SolveState --first_order.step--> Result

* A **dynamics** operator (NGD, GDA, DI, DM) receives a ``DynamicsState`` and returns it
  updated (``state.replace(...)``) for the next dynamics operator or for the chain, or a
  ``Result`` when it computes the hyper-gradient itself (``provides_hypergradient``, DM).
* A **hyper-gradient** operator receives a ``ChainState``. A modifier (PTT, FOA, RGT, IAD
  before CG) returns the next operator's ``ChainState``; a terminal one (RAD, CG...)
  returns a ``Result`` (build it with ``result(op, ...)``, which checks the shapes).
* A **first-order** solver receives a ``SolveState`` and returns a ``Result``.

``RESULT_FIELDS`` is the one list of what a result may carry; ``OUTPUT_FIELDS`` are the
lists of Vars the solver applies. JBOAT's keyword form (``compute_gradients(**kwargs)``,
``optimize(...)``) is the same data: ``as_kwargs`` / ``from_kwargs`` and ``as_dict`` /
``Result.from_dict`` translate, for the seed API and for plugins written for API 1.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from ..errors import OperatorRuntimeError

def _replace(obj, changes: dict):
    """A copy of the frozen dataclass ``obj`` with ``changes`` (fields only): what
    ``dataclasses.replace`` does, without its per-call field introspection (it runs a few
    times per hyper-gradient step)."""
    unknown = set(changes) - obj.__dataclass_fields__.keys()
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {sorted(unknown)[0]!r}")
    new = object.__new__(type(obj))
    new.__dict__.update(obj.__dict__)
    new.__dict__.update(changes)
    return new


Objective = Callable[..., Any]
"""``objective(ll_feed_dict, ul_model, ll_model, **kw) -> scalar Var``: f, F, or an
aggregation such as GDA's phi_alpha (``kw`` carries ``params=[...]``)."""


@dataclass(frozen=True)
class DynamicsPlan:
    """What the hyper-gradient chain asks of the lower-level dynamics (built by the core
    from every chain operator's ``configure_dynamics``; the dynamics never look for
    operator names).

    Attributes
    ----------
    track : bool
        Keep the differentiable trajectory y_0..y_K (memory O(K)); else O(1).
    pessimistic : bool
        Evaluate F(x, y_k) after every step and report k* = argmax_k F (PTT).
    first_order : bool
        Stop gradients through the inner gradients: y_{k+1} = y_k - eta sg(grad f) (FOA).
    truncate : int
        Number of leading steps taken outside the graph (RGT).
    record_loss : bool
        Keep the lower objective of the last inner step as ``lower_loss`` (the solver's
        history asks for it; off otherwise because Jittor computes every live Var).
    checkpoint_every : int
        With ``track``: keep only every s-th inner state and recompute each segment in the
        reverse pass (memory O(K/s + s)); 0: the whole trajectory (the solver config's
        ``checkpoint_every``).
    forward_mode : bool
        Carry the tangents dy_k/dx alongside the inner loop (FMD; memory independent of K,
        cost proportional to the number of upper scalars).
    forward_limit : int
        The most upper scalars forward mode accepts (FMD's ``max_scalars``).
    """

    track: bool = False
    pessimistic: bool = False
    first_order: bool = False
    truncate: int = 0
    record_loss: bool = False
    checkpoint_every: int = 0
    forward_mode: bool = False
    forward_limit: int = 256

    def replace(self, **changes) -> "DynamicsPlan":
        """A copy with ``changes``."""
        return _replace(self, changes)

    def merge(self, other: "DynamicsPlan") -> "DynamicsPlan":
        """What both ask for: any flag either sets, the longer truncation."""
        return DynamicsPlan(self.track or other.track, self.pessimistic or other.pessimistic,
                            self.first_order or other.first_order,
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
    aggregate : callable or None
        GDA's aggregated objective ``gda_loss(ll_feed, ul_feed, ul_model, ll_model, **kw)``
        (set by GDA); the inner steps then descend phi_{alpha_k}.
    alpha_at : callable or None
        ``k -> alpha_k``, GDA's schedule over the inner steps.
    k_star : int
        Set by the inner loop: k* of PTT (``plan.pessimistic``), else -1 (the last step).
    lower_loss : jittor.Var or None
        Set by the inner loop: f at the last inner step (``plan.record_loss``).
    lower_objective : callable or None
        Set by the inner loop: the objective at the point the chain evaluates (GDA's phi
        at that step's alpha), for implicit operators.
    tangents : Tangents or None
        Set by the inner loop with ``plan.forward_mode``: dy_K/dx per upper scalar
        (``jboat_core.numerics.forward``), for FMD.
    next_operation : str or None
        Name of the next dynamics operator (None: this one is the last).
    """

    ll_feed: Any
    ul_feed: Any
    fmodel: Any
    dopt: Any
    plan: DynamicsPlan = field(default_factory=DynamicsPlan)
    current_iter: int = 0
    aggregate: Callable | None = None
    alpha_at: Callable[[int], float] | None = None
    k_star: int = -1
    lower_loss: Any = None
    lower_objective: Objective | None = None
    tangents: Any = None
    next_operation: str | None = None

    def replace(self, **changes) -> "DynamicsState":
        """A copy with ``changes`` (states are frozen)."""
        return _replace(self, changes)

    def objective_at(self, k: int, ll_objective: Objective) -> Objective:
        """The objective of inner step ``k``: ``ll_objective``, or phi_{alpha_k} after GDA."""
        if self.aggregate is None:
            return ll_objective
        return aggregated(self.aggregate, self.alpha_at(k), self.ul_feed)

    def as_kwargs(self) -> dict:
        """JBOAT's keyword form (``optimize(**kwargs)`` of API-1 dynamics)."""
        kw = dict(ll_feed_dict=self.ll_feed, ul_feed_dict=self.ul_feed,
                  auxiliary_model=self.fmodel, auxiliary_opt=self.dopt,
                  current_iter=self.current_iter, plan=self.plan,
                  next_operation=self.next_operation)
        if self.aggregate is not None:
            kw.update(gda_loss=self.aggregate, alpha=self.alpha_at(0),
                      alpha_decay=(self.alpha_at(1) / self.alpha_at(0)))
        return kw

    def updated_from(self, kwargs: Mapping) -> "DynamicsState":
        """This state updated from an API-1 dynamics operator's pass-through dict."""
        changes: dict[str, Any] = {}
        if kwargs.get("gda_loss") is not None:
            alpha, decay = float(kwargs.get("alpha", 0.5)), float(kwargs.get("alpha_decay", 1.0))
            changes.update(aggregate=kwargs["gda_loss"], alpha_at=lambda k: alpha * decay ** k)
        if isinstance(kwargs.get("max_loss_iter"), int):
            changes["k_star"] = kwargs["max_loss_iter"]
        return self.replace(**changes)

    def chain_state(self, ll_lr: float | None, init_gradients: bool) -> "ChainState":
        """The hyper-gradient chain's input after the inner loop."""
        return ChainState(self.ll_feed, self.ul_feed, self.fmodel, k_star=self.k_star,
                          lower_objective=self.lower_objective, ll_lr=ll_lr,
                          init_gradients=init_gradients, current_iter=self.current_iter,
                          tangents=self.tangents)


#: ``ChainState`` fields and their names in JBOAT's keyword protocol.
_CHAIN_KWARGS = {"ll_feed": "ll_feed_dict", "ul_feed": "ul_feed_dict",
                 "fmodel": "auxiliary_model", "k_star": "max_loss_iter",
                 "point": "lower_model_params", "wrt": "hparams",
                 "lower_objective": "lower_objective", "ll_lr": "ll_lr",
                 "init_gradients": "init_gradients", "current_iter": "current_iter",
                 "tangents": "tangents", "next_operation": "next_operation"}


@dataclass(frozen=True)
class ChainState:
    """What a hyper-gradient operator receives; a modifier returns the next one's.

    Attributes
    ----------
    ll_feed, ul_feed : dict
    fmodel : FunctionalModel
        The lower model after the dynamics: ``fmodel.parameters()`` is y_K,
        ``parameters(time=k)`` y_k (when tracked), ``parameters(time=0)`` y_0.
    k_star : int
        PTT's k* (>= 1) when the dynamics were pessimistic, else -1.
    point : tuple of jittor.Var or None
        The lower point to evaluate at, set by a modifier (PTT: y_{k*}); None: y_K.
    wrt : tuple of jittor.Var or None
        The variables to differentiate, set by a modifier (IAD before CG/NS: y_0);
        None: the upper variables.
    lower_objective : callable or None
        The objective the dynamics descended (GDA's phi), None: the operator's f.
    ll_lr : float or None
        eta, the lower learning rate of the inner loop.
    init_gradients : bool
        DI asks the terminal operator for dF/dy_0 too (``Result.ll_init_gradients``).
    current_iter : int
    tangents : Tangents or None
        dy_K/dx per upper scalar when the dynamics ran in forward mode (FMD).
    next_operation : str or None
        The next operator's name (None: this one ends the chain).
    extras : mapping
        Keys of JBOAT's keyword protocol that API 2 does not name, carried between API-1
        plugins unchanged.
    """

    ll_feed: Any
    ul_feed: Any
    fmodel: Any
    k_star: int = -1
    point: tuple | None = None
    wrt: tuple | None = None
    lower_objective: Objective | None = None
    ll_lr: float | None = None
    init_gradients: bool = False
    current_iter: int = 0
    tangents: Any = None
    next_operation: str | None = None
    extras: Mapping = field(default_factory=dict)

    def replace(self, **changes) -> "ChainState":
        """A copy with ``changes`` (what a modifier returns)."""
        for key in ("point", "wrt"):
            if changes.get(key) is not None:
                changes[key] = tuple(changes[key])
        return _replace(self, changes)

    def lower_point(self) -> list:
        """The lower point to evaluate at: ``point``, else y_K."""
        return list(self.point) if self.point is not None else self.fmodel.parameters()

    def objective(self, op) -> Objective:
        """The lower objective to differentiate: ``lower_objective``, else ``op``'s f."""
        return self.lower_objective or op.ll_objective

    def lower_lr(self, op) -> float:
        """eta: ``ll_lr``, else the runtime's lower optimizer; names ``op`` if neither."""
        return lower_lr(op, self.ll_lr)

    def as_kwargs(self) -> dict:
        """JBOAT's keyword form (``compute_gradients(**kwargs)``)."""
        kw = {**self.extras, "hyper_gradient_finished": False}
        for name, key in _CHAIN_KWARGS.items():
            value = getattr(self, name)
            if name in ("point", "wrt") and value is not None:
                value = list(value)
            if value is not None or name not in ("point", "wrt", "lower_objective", "ll_lr",
                                                 "tangents"):
                kw[key] = value
        return kw

    @classmethod
    def from_kwargs(cls, kwargs: Mapping) -> "ChainState":
        """A state from JBOAT's keyword form (a seed call or an API-1 pass-through)."""
        missing = [k for k in ("ll_feed_dict", "ul_feed_dict", "auxiliary_model")
                   if k not in kwargs]
        if missing:
            raise TypeError(f"compute_gradients() missing keyword arguments: "
                            f"{', '.join(missing)}")
        known = set(_CHAIN_KWARGS.values()) | {"hyper_gradient_finished"}
        values = {name: kwargs.get(key) for name, key in _CHAIN_KWARGS.items()}
        k_star = values["k_star"]
        values["k_star"] = k_star if isinstance(k_star, int) else -1
        values["init_gradients"] = bool(values["init_gradients"])
        values["current_iter"] = int(values["current_iter"] or 0)
        for key in ("point", "wrt"):
            values[key] = tuple(values[key]) if values[key] is not None else None
        return cls(**values, extras={k: v for k, v in kwargs.items() if k not in known})


@dataclass(frozen=True)
class SolveState:
    """What a first-order solver receives.

    Attributes
    ----------
    ll_feed, ul_feed : dict
    current_iter : int
    """

    ll_feed: Any
    ul_feed: Any
    current_iter: int = 0


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
    """

    upper_loss: Any
    hyper_gradients: list
    ll_init_gradients: list | None = None
    ll_update: list | None = None
    ll_gradients: list | None = None
    lower_loss: Any = None
    ul_lr: float | None = None

    def get(self, key: str, default=None):
        """Read a field by name (``None`` for an absent one), as from JBOAT's dict."""
        value = getattr(self, key, None) if key in RESULT_FIELDS else None
        return default if value is None else value

    def __getitem__(self, key: str):
        if key not in RESULT_FIELDS:
            raise KeyError(key)
        return getattr(self, key)

    def replace(self, **changes) -> "Result":
        """A copy with ``changes``."""
        return _replace(self, changes)

    def as_dict(self) -> dict:
        """JBOAT's terminal dict (``hyper_gradient_finished`` = True, every field)."""
        return {"hyper_gradient_finished": True,
                **{name: getattr(self, name) for name in RESULT_FIELDS}}

    @classmethod
    def from_dict(cls, data: Mapping, producer: str = "operator") -> "Result":
        """A result from JBOAT's terminal dict (API-1 operators); unknown keys are left."""
        if "upper_loss" not in data or data.get("hyper_gradients") is None:
            raise OperatorRuntimeError(producer, "result", "a terminal result needs "
                                       "upper_loss and hyper_gradients (one per upper "
                                       f"variable); got keys {sorted(data)}")
        values = {name: data.get(name) for name in RESULT_FIELDS}
        for name in OUTPUT_FIELDS:
            if values[name] is not None:
                values[name] = list(values[name])
        return cls(**values)


#: Every field a result may carry, in one place.
RESULT_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Result))
#: The result fields that hold lists of Vars the solver applies.
OUTPUT_FIELDS: tuple[str, ...] = ("hyper_gradients", "ll_init_gradients", "ll_update",
                                  "ll_gradients")


def lower_lr(op, ll_lr=None) -> float:
    """eta, the lower-level learning rate: ``ll_lr`` given by the solver, else the runtime's
    lower optimizer; ``OperatorRuntimeError`` naming ``op`` if neither."""
    if ll_lr is not None:
        return float(ll_lr)
    if op.runtime.ll_lr is not None:
        return op.runtime.ll_lr
    raise OperatorRuntimeError(type(op).name, "config", "needs the lower-level learning rate: "
                               "pass ll_lr=... to compute_gradients or lower_level_opt in "
                               "solver_config")


def result(op, upper_loss, hyper_gradients, ll_init_gradients=None, **more) -> Result:
    """A terminal ``Result`` of a hyper-gradient operator, checked: one gradient per upper
    variable, each of its shape (``more``: other ``Result`` fields)."""
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

"""Binding the user's variable lists to the models, by identity and never by position.

``ll_var`` / ``ul_var`` may be ``list(model.parameters())`` (Jittor includes BatchNorm
running statistics there), a subset, another order, or both levels living in one module
(DARTS: architecture weights and network weights). ``bind_variables`` resolves them once,
before any computation:

* buffers (stop-grad Vars such as running statistics) are recognised and dropped: they
  are state, not variables;
* every lower variable must be a parameter the lower model holds (so it can be
  substituted in the functional model), and the lower optimizer must optimize it;
* a variable belongs to one level, unless the two lists are the same variables
  (meta-learning: the upper variables are the lower level's initialisation), which only
  an operator declaring ``keeps_initialisation`` (IAD) accepts;
* the lower variables are kept in the lower model's order (``module.parameters()``), the
  order of every ``params=`` list; every later write (warm start, DI, DM's step,
  first-order updates, checkpoints) goes to the variable each value was computed for.

Each refusal names the variable (list, index, shape) and why. Modules kept in plain
Python containers, which ``Module.parameters()`` does not see, are reported by a warning
naming the attribute.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

from ..platform._jittor import jittor
from ..errors import ConfigError
from .functional import is_buffer, walk


class InvisibleModuleWarning(UserWarning):
    """A model holds sub-modules that ``Module.parameters()`` does not see."""


@dataclass
class Binding:
    """Resolved variables.

    Attributes
    ----------
    lower : list of jittor.Var
        Lower-level variables, in the lower model's order.
    upper : list of jittor.Var
        Upper-level variables, in the user's order.
    shared : bool
        The two levels are the same variables (meta-learning).
    """

    lower: list
    upper: list
    shared: bool = False


def _desc(name: str, i: int, v) -> str:
    return f"{name}[{i}] (shape {list(v.shape)}, {v.dtype})"


def _vars(seq, name: str) -> list:
    jt = jittor()
    out = list(seq)
    for i, v in enumerate(out):
        if not isinstance(v, jt.Var):
            raise ConfigError([f"{name}[{i}]: expected a jittor.Var, got {type(v).__name__}"])
    return out


def _dedupe(seq) -> list:
    seen, out = set(), []
    for v in seq:
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def bind_variables(ll_model, ul_model, ll_var=None, ul_var=None, ll_opt=None,
                   allow_shared: bool = False, shared_hint: str = "") -> Binding:
    """Resolve ``ll_var`` / ``ul_var`` against the models (see the module docstring).

    Parameters
    ----------
    ll_model, ul_model : jittor.Module
    ll_var, ul_var : list of jittor.Var, optional
        Default: the lower model's trainable parameters that ``ll_opt`` optimizes (minus
        the upper variables), and the upper model's trainable parameters.
    ll_opt : jittor.optim.Optimizer, optional
        The lower optimizer; every lower variable must be among its parameters.
    allow_shared : bool
        Accept identical lower and upper variables (meta-learning).
    shared_hint : str
        What to suggest when they are identical but not accepted.

    Raises
    ------
    ConfigError
        Naming the variable and the reason, before anything is computed.
    """
    warn_invisible_modules(ll_model, "lower")
    if ul_model is not ll_model:
        warn_invisible_modules(ul_model, "upper")
    params, slots, buffers = walk(ll_model)
    buffer_ids = {id(b) for b in buffers}
    upper = _upper(ul_model, ul_var)
    upper_ids = {id(v) for v in upper}
    optimized = _optimized(ll_opt)
    if ll_var is None:
        lower = [p for p in params if id(p) not in upper_ids
                 and (optimized is None or id(p) in optimized)]
        if not lower and upper_ids and all(id(p) in upper_ids for p in params):
            lower = list(params)  # both defaults: the same parameters (meta-learning)
    else:
        lower = _lower(_vars(ll_var, "ll_var"), slots, buffer_ids, ll_model, optimized)
    shared = _check_levels(lower, upper, ll_var, allow_shared, shared_hint)
    order = {id(p): i for i, p in enumerate(params)}
    lower.sort(key=lambda v: order[id(v)])
    if not lower:
        raise ConfigError([f"ll_var: no lower-level variable: {type(ll_model).__name__} has "
                           "no trainable parameter that the lower optimizer optimizes"])
    return Binding(lower=lower, upper=upper, shared=shared)


def _upper(ul_model, ul_var) -> list:
    if ul_var is None:
        from .functional import trainable_parameters
        return _dedupe(trainable_parameters(ul_model))
    given = _vars(ul_var, "ul_var")
    return _dedupe([v for v in given if not is_buffer(v, ul_model)])


def _optimized(opt) -> set | None:
    if opt is None:
        return None
    return {id(p) for pg in opt.param_groups for p in pg["params"]}


def _lower(given, slots, buffer_ids, ll_model, optimized) -> list:
    out, seen = [], set()
    for i, v in enumerate(given):
        if id(v) in buffer_ids or (id(v) not in slots and is_buffer(v, ll_model)):
            continue  # BatchNorm statistics and the like: state, not variables
        if id(v) not in slots:
            raise ConfigError([
                f"ll_var: {_desc('ll_var', i, v)} is not a parameter of the lower model "
                f"{type(ll_model).__name__}: jboat substitutes the lower variables inside "
                "the model, so each must be one of its attributes (Vars and modules kept in "
                "plain lists or dicts are invisible to Module.parameters())"])
        if optimized is not None and id(v) not in optimized:
            raise ConfigError([
                f"ll_var: {_desc('ll_var', i, v)} is not optimized by the lower optimizer: "
                "build it over the same variables (e.g. SGD(ll_var, lr))"])
        if id(v) not in seen:
            seen.add(id(v))
            out.append(v)
    return out


def _check_levels(lower, upper, ll_var, allow_shared, hint) -> bool:
    lower_ids, upper_ids = {id(v) for v in lower}, {id(v) for v in upper}
    both = lower_ids & upper_ids
    if not both:
        return False
    if lower_ids == upper_ids:
        if allow_shared:
            return True
        raise ConfigError([
            f"ll_var/ul_var: the lower and upper variables are the same {len(lower)} "
            "variables. That is meta-learning (the upper variables are the lower level's "
            f"initialisation): {hint or 'use IAD (MAML) in na_op'}; otherwise give each "
            "level its own variables (e.g. ul_var=model.arch_parameters())"])
    j, v = next((j, v) for j, v in enumerate(upper) if id(v) in both)
    where = "ll_var" if ll_var is not None else "the lower model's parameters"
    raise ConfigError([
        f"ll_var/ul_var: {_desc('ul_var', j, v)} is also in {where}: a variable belongs to "
        "one level. Remove it from ll_var (or, for architecture weights that are parameters "
        "of the same module, pass ll_var without them)"])


def check_mirror(lower, upper, shared: bool, who: str) -> None:
    """Refuse upper variables that do not mirror the lower ones, for operators that hand
    the gradient with respect to the lower level's initial point y_0 to ``ul_var``
    (``keeps_initialisation``: IAD; GAFFO checks its own, stricter rule). ``who`` names
    the operators and their distribution.

    Raises
    ------
    ConfigError
        When the two lists differ in length or in a pair's shape (unless ``shared``).
    """
    if shared:
        return
    rule = (f"{who} needs ul_var to mirror ll_var ({{}}): it gives ul_var the gradient with "
            "respect to the lower level's initial point y_0 (metadata keeps_initialisation), "
            "so pass the same variables (MAML: one model at both levels) or one variable of "
            "the same shape per lower variable; for upper variables of their own "
            "(hyper-parameters, weights, an architecture) choose a chain that differentiates "
            "with respect to them, e.g. RAD or CG")
    if len(lower) != len(upper):
        raise ConfigError(["ll_var/ul_var: " + rule.format(
            f"here ll_var has {len(lower)} variables and ul_var {len(upper)}")])
    for i, (a, b) in enumerate(zip(lower, upper)):
        if list(a.shape) != list(b.shape):
            raise ConfigError(["ll_var/ul_var: " + rule.format(
                f"here {_desc('ll_var', i, a)} but {_desc('ul_var', i, b)}")])


def warn_invisible_modules(model, level: str) -> list[str]:
    """Warn about modules held in plain lists, tuples or dicts of ``model``'s modules
    (``Module.parameters()`` does not see them: they are neither trained nor
    substituted). Returns the attribute paths."""
    jt = jittor()
    reached: set[int] = set()
    model.dfs([], None, lambda parents, k, mod, n: reached.add(id(mod)), None)
    found: list = []
    seen: set[int] = set()

    def visit(mod, path):
        if id(mod) in seen:
            return
        seen.add(id(mod))
        for key, value in vars(mod).items():
            if isinstance(value, jt.nn.Module):
                if id(value) in reached:
                    visit(value, f"{path}.{key}")
            elif isinstance(value, (list, tuple, dict)):
                items = value.values() if isinstance(value, dict) else value
                mods = [m for m in items if isinstance(m, jt.nn.Module)]
                hidden = [m for m in mods if id(m) not in reached]
                if hidden and f"{path}.{key}" not in {f[0] for f in found}:
                    found.append((f"{path}.{key}", len(hidden), type(value).__name__))
                for m in mods:  # below an invisible module: reported with it already
                    if id(m) in reached:
                        visit(m, f"{path}.{key}[...]")

    visit(model, type(model).__name__)
    for path, n, container in found:
        warnings.warn(
            f"{level} model: {path} holds {n} jittor Module(s) in a plain {container}; "
            "Module.parameters() does not see their parameters, so they are neither trained "
            "nor substituted in the inner loop. Keep them in jt.nn.Sequential / "
            "jt.nn.ModuleList or as attributes", InvisibleModuleWarning, stacklevel=3)
    return [p for p, _, _ in found]

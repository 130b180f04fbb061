"""``Problem``: a complete bilevel solver built from a validated config.

One outer iteration (``run_iter``): the lower-level dynamics (GM chain) on a functional
copy of the lower model, the hyper-gradient chain (NA chain; skipped when a dynamics
operator such as DM provides the hyper-gradient), then the updates: warm start
(``copy_last_param``), the learned initialisation (DI), and the upper-level step through
the user's real optimizer.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping
from typing import Any

from ._jittor import jittor
from .config import SolverConfig, parse_solver_config
from .diffopt import DifferentiableOptimizer
from .errors import ConfigError, OperatorRuntimeError
from .functional import FunctionalModel, trainable_parameters
from .hypergradient import DynamicsPlan
from .optimstate import apply_gradients, load_optimizer_state, optimizer_state, set_lr
from .registry import Registry, get_registry
from .sequential import makes_functional_na_operation
from .solve import sync_and_check

#: Upstream ``boat_config`` keys holding runtime objects, and their Problem argument names.
RUNTIME_KEYS = {"lower_level_model": "ll_model", "upper_level_model": "ul_model",
                "lower_level_var": "ll_var", "upper_level_var": "ul_var",
                "lower_level_opt": "ll_opt", "upper_level_opt": "ul_opt"}
_LOSS_KEYS = {"lower_level_loss": "ll_objective", "upper_level_loss": "ul_objective",
              "gda_loss": "gda_loss"}


def _load_function(spec: Mapping) -> Callable:
    """Upstream ``loss_config`` entry ``{"function": "mod.attr", "params": {...}}``."""
    path = spec["function"]
    module, _, attr = path.rpartition(".")
    fn = getattr(importlib.import_module(module), attr)
    params = dict(spec.get("params") or {})
    if not params:
        return fn
    return lambda *a, **kw: fn(*a, **{**params, **kw})


class Problem:
    """A bilevel problem solved by composed jboat operators.

    Parameters
    ----------
    config : SolverConfig or dict
        Solver settings (validated); an upstream ``boat_config`` dict may also carry the
        runtime objects under its upstream keys (``lower_level_model``...).
    loss_config : dict, optional
        Upstream ``loss_config`` (dotted paths of the objectives).
    ll_objective, ul_objective : callable
        ``f(ll_feed, ul_model, ll_model, **kw)``, ``F(ul_feed, ul_model, ll_model, **kw)``.
    ll_model, ul_model : jittor.Module
    ll_opt, ul_opt : jittor.optim.Optimizer
        Lower optimizer (its differentiable twin runs the inner loop) and upper optimizer
        (applies the hyper-gradients with its own algorithm).
    ll_var, ul_var : list of jittor.Var, optional
        Default: the models' trainable parameters.
    gda_loss : callable, optional
        Aggregated objective for GDA, ``phi(ll_feed, ul_feed, ul_model, ll_model, **kw)``.
    callback : callable, optional
        ``callback(record, problem)`` after every iteration; ``record`` holds ``iter``,
        ``upper_loss``, ``lower_loss`` and ``time`` (seconds).
    """

    def __init__(self, config, loss_config=None, *, ll_objective=None, ul_objective=None,
                 ll_model=None, ul_model=None, ll_opt=None, ul_opt=None, ll_var=None,
                 ul_var=None, gda_loss=None, callback=None, registry: Registry | None = None):
        self.registry = registry or get_registry()
        given = dict(ll_objective=ll_objective, ul_objective=ul_objective, ll_model=ll_model,
                     ul_model=ul_model, ll_opt=ll_opt, ul_opt=ul_opt, ll_var=ll_var,
                     ul_var=ul_var, gda_loss=gda_loss)
        if isinstance(config, Mapping):
            data = dict(config)
            for key, arg in RUNTIME_KEYS.items():
                if key in data:
                    value = data.pop(key)
                    given[arg] = given[arg] if given[arg] is not None else value
            for key in ("gda_loss", "lower_level_loss", "upper_level_loss"):
                if callable(data.get(key)):
                    given[_LOSS_KEYS[key]] = given[_LOSS_KEYS[key]] or data.pop(key)
            config = parse_solver_config(data, self.registry)
        for key, arg in _LOSS_KEYS.items():
            if loss_config and key in loss_config and given[arg] is None:
                given[arg] = _load_function(loss_config[key])
        missing = [k for k in ("ll_objective", "ul_objective", "ll_model", "ul_model",
                               "ll_opt", "ul_opt") if given[k] is None]
        if missing:
            raise ConfigError([f"{k}: required (pass it to Problem)" for k in missing])
        self.config: SolverConfig = config
        self.ll_objective, self.ul_objective = given["ll_objective"], given["ul_objective"]
        self.ll_model, self.ul_model = given["ll_model"], given["ul_model"]
        self.ll_opt, self.ul_opt = given["ll_opt"], given["ul_opt"]
        self.ll_var = list(given["ll_var"] or trainable_parameters(self.ll_model))
        self.ul_var = list(given["ul_var"] or trainable_parameters(self.ul_model))
        self.gda_loss = given["gda_loss"]
        self.callback = callback
        self.history: list[dict] = []
        self._build()

    # -- construction ----------------------------------------------------------------
    def _runtime_config(self) -> dict:
        cfg = self.config
        out: dict[str, Any] = dict(cfg.operators)
        out.update(gm_op=cfg.gm_op, na_op=cfg.na_op, lower_iters=cfg.lower_iters,
                   gda_loss=self.gda_loss, lower_level_opt=self.ll_opt,
                   upper_level_opt=self.ul_opt, ul_var=self.ul_var, ll_var=self.ll_var)
        return out

    def _build(self) -> None:
        cfg, reg = self.config, self.registry
        runtime = self._runtime_config()
        self.dynamics = [reg.get(n, kind="dynamics").cls(
            self.ll_objective, self.ul_objective, self.ll_model, self.ul_model,
            cfg.lower_iters, runtime) for n in cfg.gm_op]
        self.dynamics_provides = type(self.dynamics[-1]).provides_hypergradient
        self.chain = None
        if not self.dynamics_provides:
            self.chain = makes_functional_na_operation(
                cfg.na_op, registry=reg, ll_objective=self.ll_objective,
                ul_objective=self.ul_objective, ll_model=self.ll_model, ul_model=self.ul_model,
                ll_var=self.ll_var, ul_var=self.ul_var, solver_config=runtime)
        self.plan = self.chain.dynamics_plan() if self.chain else DynamicsPlan()
        self.plan.record_loss = True  # the history records the last lower loss
        learns = [d for d in self.dynamics if type(d).learns_initialisation]
        self.init_opt = (type(self.ul_opt)(self.ll_var, learns[0].config.lr) if learns else None)
        ops = self.dynamics + (self.chain.gradient_instances if self.chain else [])
        keeps_init = any(type(op).keeps_initialisation for op in ops)
        self.copy_last_param = (cfg.copy_last_param and not cfg.accumulate_grad
                                and not keeps_init and not self.dynamics_provides)
        missing = [f"{key}: {type(op).name} needs it but none was given (pass it to Problem)"
                   for op in ops for key in type(op).requires_runtime if runtime.get(key) is None]
        if missing:
            raise ConfigError(missing)

    # -- one outer iteration -----------------------------------------------------------
    def _run_dynamics(self, ll_feed_dict, ul_feed_dict, fmodel, dopt, current_iter):
        state = dict(ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict,
                     auxiliary_model=fmodel, auxiliary_opt=dopt, current_iter=current_iter,
                     plan=self.plan)
        names = self.config.gm_op
        out = None
        for i, op in enumerate(self.dynamics):
            nxt = names[i + 1] if i + 1 < len(names) else None
            out = op.optimize(**state, next_operation=nxt)
            if nxt is not None:
                state = dict(out)
        return out

    def _one(self, ll_feed_dict, ul_feed_dict, current_iter):
        fmodel = FunctionalModel(self.ll_model, track=self.plan.track)
        dopt = DifferentiableOptimizer.from_optimizer(self.ll_opt, fmodel.parameters(time=0))
        out = self._run_dynamics(ll_feed_dict, ul_feed_dict, fmodel, dopt, current_iter)
        if self.dynamics_provides:
            return out, fmodel
        last = self.dynamics[-1]
        res = self.chain.compute_gradients(
            ll_feed_dict=ll_feed_dict, ul_feed_dict=ul_feed_dict, auxiliary_model=fmodel,
            max_loss_iter=out if isinstance(out, int) else -1, ll_lr=dopt.lr,
            lower_objective=last.lower_objective, init_gradients=self.init_opt is not None)
        return res[0]["gradient_operator_results"], fmodel

    def _pairs(self, ll_feed_dict, ul_feed_dict):
        if not self.config.accumulate_grad:
            return [(ll_feed_dict, ul_feed_dict)]
        if not (isinstance(ll_feed_dict, (list, tuple)) and isinstance(ul_feed_dict, (list, tuple))
                and len(ll_feed_dict) == len(ul_feed_dict) and ll_feed_dict):
            raise OperatorRuntimeError("Problem", "run_iter", "accumulate_grad needs two "
                                       "non-empty lists of feed dicts of equal length "
                                       "(one lower/upper pair per task)")
        return list(zip(ll_feed_dict, ul_feed_dict))

    def _combine(self, lists):
        lists = [g for g in lists if g is not None]
        if not lists:
            return None
        total = [sum(gs[1:], gs[0]) for gs in zip(*lists)]
        if self.config.accumulate_mode == "mean" and len(lists) > 1:
            total = [g / len(lists) for g in total]
        return total

    def run_iter(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0) -> dict:
        """One outer iteration. Returns the iteration record (``iter``, ``upper_loss``,
        ``lower_loss``, ``time``; plus ``hyper_gradients`` when ``return_grad``)."""
        jt = jittor()
        start = time.perf_counter()
        outs = [self._one(ll, ul, current_iter) for ll, ul in self._pairs(ll_feed_dict,
                                                                           ul_feed_dict)]
        grads = self._combine([r["hyper_gradients"] for r, _ in outs])
        init = self._combine([r.get("ll_init_gradients") for r, _ in outs])
        result, fmodel = outs[-1]
        losses = [r["upper_loss"] for r, _ in outs]
        lower = None
        for d in self.dynamics:
            lower = d.lower_loss if d.lower_loss is not None else lower
        sync_and_check([{"hyper_gradients": grads, "ll_init_gradients": init}],
                       self.dynamics, extra=[*losses, *([lower] if lower is not None else [])])
        if result.get("ll_update") is not None:
            for p, q in zip(self.ll_var, result["ll_update"]):
                p.update(q.detach())
        elif self.copy_last_param:
            for p, q in zip(self.ll_var, fmodel.parameters()):
                p.update(q.detach())
        if self.init_opt is not None and init is not None:
            apply_gradients(self.init_opt, self.ll_var, init)
        record = {"iter": int(current_iter)}
        if self.config.return_grad:
            record["hyper_gradients"] = grads
        else:
            if result.get("ul_lr") is not None:
                set_lr(self.ul_opt, result["ul_lr"])
            apply_gradients(self.ul_opt, self.ul_var, grads)
            jt.sync(self.ul_var)
        record["upper_loss"] = sum(float(v.item()) for v in losses) / len(losses)
        record["lower_loss"] = float(lower.item()) if lower is not None else None
        record["time"] = time.perf_counter() - start
        self.history.append({k: v for k, v in record.items() if k != "hyper_gradients"})
        if self.callback is not None:
            self.callback(record, self)
        return record

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything needed to resume: variables, optimizer states, dual variables,
        history (NumPy arrays and plain Python values)."""
        state = {"ll_var": [p.numpy().copy() for p in self.ll_var],
                 "ul_var": [p.numpy().copy() for p in self.ul_var],
                 "ul_opt": optimizer_state(self.ul_opt),
                 "init_opt": optimizer_state(self.init_opt) if self.init_opt else None,
                 "dynamics": [d.get_state() for d in self.dynamics],
                 "history": [dict(h) for h in self.history]}
        return state

    def load_state_dict(self, state: dict) -> None:
        jt = jittor()
        for p, arr in zip(self.ll_var, state["ll_var"]):
            p.update(jt.array(arr))
        for p, arr in zip(self.ul_var, state["ul_var"]):
            p.update(jt.array(arr))
        load_optimizer_state(self.ul_opt, state["ul_opt"])
        if self.init_opt is not None and state.get("init_opt"):
            load_optimizer_state(self.init_opt, state["init_opt"])
        for d, saved in zip(self.dynamics, state["dynamics"]):
            d.set_state(saved)
        self.history = [dict(h) for h in state["history"]]

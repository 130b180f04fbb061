"""``Problem``: a complete bilevel solver built from a validated config.

One outer iteration (``run_iter``): the composition (dynamics on a functional copy of the
lower model, then the hyper-gradient chain; or one first-order solver) evaluated by
``jboat_core.solver.engine``, one checked Jittor execution, then the updates: the lower variables
(warm start ``copy_last_param``, DM's or a first-order solver's lower step), the learned
initialisation (DI) and the upper-level step through the user's real optimizer. Nothing
is updated when a check fails.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Mapping

from ..platform._jittor import jittor
from ..plugins.config import SolverConfig, parse_solver_config
from ..contract.protocol import OUTPUT_FIELDS
from .engine import Composition, memory_probe, sync_and_check, warn_lower_precision
from .records import Evaluation, IterationRecord
from ..errors import ConfigError, OperatorRuntimeError
from ..numerics.optimstate import (apply_gradients, load_optimizer_state, optimizer_state, set_lr,
                                   state_vars)
from ..platform.parallel import Parallel, no_optimizer_reduce
from ..plugins.registry import Registry, get_registry
from ..contract.runtime import UPSTREAM_KEYS, Runtime
from ..numerics.variables import bind_variables, check_mirror

#: Upstream ``boat_config`` keys holding runtime objects, and their Problem argument names.
RUNTIME_KEYS = UPSTREAM_KEYS
_LOSS_KEYS = {"lower_level_loss": "ll_objective", "upper_level_loss": "ul_objective",
              "gda_loss": "gda_loss"}


def load_function(spec: Mapping, key: str = "function") -> Callable:
    """Upstream ``loss_config`` entry ``{"function": "mod.attr", "params": {...}}``: the
    module is imported from ``sys.path`` (as upstream: the script's folder and the
    current directory), ``params`` are default keyword arguments."""
    if not isinstance(spec, Mapping) or not isinstance(spec.get("function"), str):
        raise ConfigError([f"{key}: expected {{\"function\": \"module.name\", \"params\": "
                           f"{{...}}}}, got {spec!r}"])
    path = spec["function"]
    module, _, attr = path.rpartition(".")
    try:
        fn = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError([f"{key}.function: cannot load {path!r}: {exc} (the module must be "
                           "importable from the current directory or sys.path)"]) from None
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
        Matched to the models by identity (``jboat_core.numerics.variables``): buffers are dropped,
        a variable belongs to one level. Default: the models' trainable parameters.
    gda_loss : callable, optional
        Aggregated objective for GDA, ``phi(ll_feed, ul_feed, ul_model, ll_model, **kw)``.
    callback : callable, optional
        ``callback(record, problem)`` after every iteration; ``record`` holds ``iter``,
        ``upper_loss``, ``lower_loss`` and ``time`` (seconds).
    ll_solver : LowerSolver, optional
        The user's own lower solver with its optimality condition
        (``jboat_core.custom_root`` / ``custom_fixed_point``), for ``gm_op = ["SOLVED"]``.
    parallel : Parallel, optional
        Under ``mpirun`` (detected by default): every process passes the full feeds,
        takes its shard of them, and the results are averaged at the points listed in
        ``jboat_core.platform.parallel``; the variables are broadcast from rank 0 here.
    """

    def __init__(self, config, loss_config=None, *, ll_objective=None, ul_objective=None,
                 ll_model=None, ul_model=None, ll_opt=None, ul_opt=None, ll_var=None,
                 ul_var=None, gda_loss=None, callback=None, registry: Registry | None = None,
                 parallel: Parallel | None = None, ll_solver=None):
        self.registry = registry or get_registry()
        given = dict(ll_objective=ll_objective, ul_objective=ul_objective, ll_model=ll_model,
                     ul_model=ul_model, ll_opt=ll_opt, ul_opt=ul_opt, ll_var=ll_var,
                     ul_var=ul_var, gda_loss=gda_loss)
        if isinstance(config, Mapping):
            config = self._split_upstream(dict(config), given)
        for key, arg in _LOSS_KEYS.items():
            if loss_config and key in loss_config and given[arg] is None:
                given[arg] = load_function(loss_config[key], key)
        missing = [k for k in ("ll_objective", "ul_objective", "ll_model", "ul_model",
                               "ll_opt", "ul_opt") if given[k] is None]
        if missing:
            raise ConfigError([f"{k}: required (pass it to Problem)" for k in missing])
        self.config: SolverConfig = config
        self.ll_objective, self.ul_objective = given["ll_objective"], given["ul_objective"]
        self.ll_model, self.ul_model = given["ll_model"], given["ul_model"]
        self.gda_loss = given["gda_loss"]
        self.ll_solver = ll_solver
        self.callback = callback
        self.history: list[dict] = []
        #: Operator name -> its adopted memory (``jboat_core.contract.protocol``).
        self.memories: dict = {}
        self._precision_checked = False
        self.parallel = parallel or Parallel.detect(
            mode="tasks" if config.accumulate_grad else "examples")
        self._build(given)

    def _split_upstream(self, data: dict, given: dict) -> SolverConfig:
        for key, arg in RUNTIME_KEYS.items():
            if key in data:
                value = data.pop(key)
                given[arg] = given[arg] if given[arg] is not None else value
        for key in ("gda_loss", "lower_level_loss", "upper_level_loss"):
            if callable(data.get(key)):
                given[_LOSS_KEYS[key]] = given[_LOSS_KEYS[key]] or data.pop(key)
        return parse_solver_config(data, self.registry)

    # -- construction ----------------------------------------------------------------
    def _build(self, given: dict) -> None:
        cfg, reg = self.config, self.registry
        classes = [reg.get(n).cls for n in cfg.composition()]
        keeps = [c.name for c in classes if c.keeps_initialisation]
        binding = bind_variables(self.ll_model, self.ul_model, given["ll_var"],
                                 given["ul_var"], given["ll_opt"], allow_shared=bool(keeps),
                                 shared_hint="use IAD (MAML) in na_op")
        self.ll_var, self.ul_var = binding.lower, binding.upper
        if keeps:
            dists = sorted({reg.get(n).origin.distribution for n in keeps})
            check_mirror(self.ll_var, self.ul_var, binding.shared,
                         f"{'+'.join(keeps)} ({', '.join(dists)})")
        self.runtime = Runtime(
            operators=cfg.operators, ll_opt=given["ll_opt"], ul_opt=given["ul_opt"],
            ll_var=self.ll_var, ul_var=self.ul_var, gda_loss=self.gda_loss,
            gm_op=tuple(cfg.gm_op), na_op=tuple(cfg.na_op), fo_op=tuple(cfg.fo_op),
            lower_iters=cfg.lower_iters, ll_model=self.ll_model, ul_model=self.ul_model,
            ll_objective=self.ll_objective, ul_objective=self.ul_objective,
            solver=cfg, parallel=self.parallel, registry=reg, ll_solver=self.ll_solver)
        missing = [f"{key}: {c.name} needs it but none was given (pass it to Problem)"
                   for c in classes for key in c.requires_runtime
                   if self.runtime.get(key) is None]
        if missing:
            raise ConfigError(missing)
        # the history records the last lower loss (record_loss)
        self.composition = comp = Composition(cfg, self.runtime, reg, record_loss=True)
        self.dynamics, self.chain, self.plan = comp.dynamics, comp.chain, comp.plan
        self.solver = comp.solver
        learns = [d for d in self.dynamics if type(d).learns_initialisation]
        self.init_opt = (type(self.ul_opt)(self.ll_var, learns[0].config.lr) if learns else None)
        self.copy_last_param = (cfg.copy_last_param and not cfg.accumulate_grad
                                and comp.adopts_inner_result)
        if self.parallel.active:
            self._start_parallel()

    def _start_parallel(self) -> None:
        """Same configuration on every rank, and rank 0's variables everywhere."""
        from ..numerics.functional import walk
        par = self.parallel
        par.check_same({"solver": self.config.model_dump(mode="json", exclude={"operators"}),
                        "sections": {k: (v.model_dump(mode="json") if hasattr(v, "model_dump")
                                         else v) for k, v in self.config.operators.items()},
                        "variables": [list(v.shape) for v in self.ll_var + self.ul_var],
                        "world": par.world})
        buffers = walk(self.ll_model)[2] + (walk(self.ul_model)[2]
                                            if self.ul_model is not self.ll_model else [])
        par.broadcast(self.ll_var + self.ul_var + buffers)

    @property
    def first_order(self):
        """Deprecated: ``solver`` (the first-order solver instance, or None)."""
        import warnings

        warnings.warn("Problem.first_order is now Problem.solver; the old name goes in jboat "
                      "0.3", DeprecationWarning, stacklevel=2)
        return self.solver

    @property
    def ll_opt(self):
        """The lower-level optimizer (its differentiable twin runs the inner loop)."""
        return self.runtime.ll_opt

    @ll_opt.setter
    def ll_opt(self, opt) -> None:
        self.runtime.ll_opt = opt

    @property
    def ul_opt(self):
        """The upper-level optimizer (applies the hyper-gradients)."""
        return self.runtime.ul_opt

    @ul_opt.setter
    def ul_opt(self, opt) -> None:
        self.runtime.ul_opt = opt

    # -- one outer iteration -----------------------------------------------------------
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

    def _evaluate(self, ll_feed_dict, ul_feed_dict, current_iter: int):
        """The composition on every pair of feeds, combined, computed and checked;
        returns ``(Evaluation, the last pair's Outcome, the new memories)``."""
        comp, par = self.composition, self.parallel
        if par.active:
            ll_feed_dict, ul_feed_dict = par.shard(ll_feed_dict, ul_feed_dict)
        outs = [comp.evaluate(ll, ul, current_iter, init_gradients=self.init_opt is not None,
                              memories=self.memories)
                for ll, ul in self._pairs(ll_feed_dict, ul_feed_dict)]
        last = outs[-1]
        combined = {key: self._combine([getattr(o.result, key) for o in outs])
                    for key in OUTPUT_FIELDS}
        upper = [o.result.upper_loss.reshape((1,)) for o in outs]
        upper = [sum(upper[1:], upper[0]) / len(upper)]
        lower = [last.lower_loss.reshape((1,))] if last.lower_loss is not None else []
        if par.active:  # the solver's one collective: results and losses, global means
            combined, upper, lower = self._reduce(combined, upper, lower)
        if not self._precision_checked:
            self._precision_checked = True
            warn_lower_precision(self.ll_var + self.ul_var, upper=last.result.upper_loss,
                                 lower=last.lower_loss)
        memory: dict = {}
        for o in outs:
            memory.update(o.memory)
        memory = {name: {k: [v.detach() for v in vs] for k, vs in mem.items()}
                  for name, mem in memory.items()}
        checks = [c for o in outs for c in o.checks]
        checks += [memory_probe(mem, name) for name, mem in memory.items()]
        result = last.result.replace(**combined)
        values = sync_and_check([result], checks, extra=lower, losses=upper,
                                producer=last.producer, current_iter=current_iter,
                                check=self.config.check_finite)
        evaluation = Evaluation(result, values[0],
                                float(lower[0].item()) if lower else None,
                                int(current_iter), result.info)
        return evaluation, last, memory

    def _reduce(self, combined, upper, lower):
        keys = [k for k, v in combined.items() if v is not None]
        flat = [v for k in keys for v in combined[k]] + upper + lower
        means = iter(self.parallel.mean(flat))
        out = {k: ([next(means) for _ in combined[k]] if k in keys else None) for k in combined}
        upper = [next(means) for _ in upper]
        return out, upper, [next(means) for _ in lower]

    def evaluate(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0) -> Evaluation:
        """One outer iteration's results, computed and checked, without updating any
        variable, optimizer or operator memory (``Evaluation``: ``hyper_gradients``, one
        per ``ul_var``; ``ll_init_gradients`` (DI); ``ll_update`` / ``ll_gradients`` (DM,
        first-order solvers; one per lower variable); ``upper_loss``, ``lower_loss``)."""
        evaluation, _, _ = self._evaluate(ll_feed_dict, ul_feed_dict, current_iter)
        return evaluation  # the operators' new memories are dropped, not adopted

    def run_iter(self, ll_feed_dict, ul_feed_dict, current_iter: int = 0) -> IterationRecord:
        """One outer iteration: evaluate, check, then apply (the lower variables, the
        learned initialisation, the upper step unless ``return_grad``) and adopt the
        operators' new memories. Returns the ``IterationRecord`` (``iter``,
        ``upper_loss``, ``lower_loss``, ``time``; ``hyper_gradients`` with
        ``return_grad``)."""
        start = time.perf_counter()
        evaluation, last, memory = self._evaluate(ll_feed_dict, ul_feed_dict, current_iter)
        result = evaluation.result
        self._update_lower(last, result)
        if not self.config.return_grad:
            if result.ul_lr is not None:
                set_lr(self.ul_opt, result.ul_lr)
            with no_optimizer_reduce(self.parallel):  # already averaged: reduce once
                apply_gradients(self.ul_opt, self.ul_var, result.hyper_gradients)
        self.memories.update(memory)
        # Materialise every variable, optimizer state and memory now: the next iteration
        # starts from computed arrays, as a resumed run does (bit-identical resumes).
        jittor().sync([*self.ul_var, *self.ll_var, *state_vars(self.ul_opt),
                       *state_vars(self.ll_opt), *state_vars(self.init_opt),
                       *(v for mem in memory.values() for vs in mem.values() for v in vs)])
        record = IterationRecord(int(current_iter), evaluation.upper_loss,
                                 evaluation.lower_loss, time.perf_counter() - start,
                                 evaluation, bool(self.config.return_grad))
        self.history.append(record.history_entry())
        if self.callback is not None:
            self.callback(record, self)
        return record

    def _update_lower(self, last, result) -> None:
        """Write the lower-level results, each to the variable it was computed for: the
        operator's ``ll_update``, else the inner loop's y_K (warm start, with the buffers
        and the twin optimizer's state); then ``ll_gradients`` and DI's
        ``ll_init_gradients`` through their optimizers."""
        low = last.lower
        variables = low.variables if low is not None else self.ll_var
        if result.ll_update is not None:
            for p, q in zip(variables, result.ll_update):
                p.update(q.detach())
            if low is not None:
                low.fmodel.write_back_buffers(low.buffers)
        elif self.copy_last_param and low is not None:
            for p, q in zip(variables, low.values):
                p.update(q.detach())
            low.fmodel.write_back_buffers(low.buffers)
            if low.twin is not None:  # the lower optimizer continues from the inner loop
                low.twin.write_back(self.ll_opt)
        with no_optimizer_reduce(self.parallel):
            if result.ll_gradients is not None:
                apply_gradients(self.ll_opt, variables, result.ll_gradients)
            if self.init_opt is not None and result.ll_init_gradients is not None:
                apply_gradients(self.init_opt, variables, result.ll_init_gradients)

    # -- checkpoints -------------------------------------------------------------------
    def state_dict(self, history: bool = True) -> dict:
        """Everything needed to resume: variables, optimizer states, operator states,
        history (NumPy arrays and plain Python values; without the history when
        ``history`` is False: ``jboat run`` writes it apart)."""
        ops = self.composition.operators
        state = {"ll_var": [p.numpy().copy() for p in self.ll_var],
                 "ul_var": [p.numpy().copy() for p in self.ul_var],
                 "ll_buffers": self._buffer_arrays(),
                 "ll_opt": optimizer_state(self.ll_opt),
                 "ul_opt": optimizer_state(self.ul_opt),
                 "init_opt": optimizer_state(self.init_opt) if self.init_opt else None,
                 "operators": {type(op).name: _arrays(self.memories.get(type(op).name, {}))
                               for op in ops}}
        if history:
            state["history"] = [dict(h) for h in self.history]
        return state

    def state_schema(self) -> dict:
        """What ``load_state_dict`` accepts from a checkpoint (``jboat_core.contract.stateschema``
        schema, without the history): the live arrays' shapes and dtypes; optimizer step
        counts; the optimizers' hyper-parameters equal to the live ones (the task file
        decides them, never a checkpoint), except the upper learning rate when an
        operator schedules it (``schedules_ul_lr``, DM: the checkpoint carries the
        schedule's value); each operator's state as the operator describes it
        (``_operator_schema``)."""
        from ..contract.stateschema import Equal, Plain, schema_of

        live = self.state_dict(history=False)
        schema = schema_of(live)
        scheduled = self._schedules_ul_lr()
        for key in ("ll_opt", "ul_opt", "init_opt"):
            if not isinstance(live[key], dict):
                continue
            schema[key]["n_step"] = Plain("count")
            schema[key]["lr"] = (Plain("positive") if key == "ul_opt" and scheduled else
                                 Equal(live[key]["lr"], "the task file"))
            for group, spec in zip(live[key]["groups"], schema[key]["groups"]):
                spec["_scalars"] = {k: Equal(v, "the task file")
                                    for k, v in group["_scalars"].items()}
        lower = tuple(schema_of(a) for a in live["ll_var"])
        upper = tuple(schema_of(a) for a in live["ul_var"])
        schema["operators"] = {type(op).name: _operator_schema(op, live["operators"][
            type(op).name], lower, upper) for op in self.composition.operators}
        return schema

    def _buffer_arrays(self) -> list:
        from ..numerics.functional import walk
        return [b.numpy().copy() for b in walk(self.ll_model)[2]]

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (same problem). The optimizers keep their
        hyper-parameters (the task file's); only step counts and moments are restored,
        and the upper learning rate when an operator schedules it."""
        import numpy as np

        from ..numerics.functional import walk

        jt = jittor()
        # each array in its Var's own dtype (jt.array would turn float64 into float32)
        for p, arr in zip(self.ll_var, state["ll_var"]):
            p.update(jt.array(arr, str(p.dtype)))
        for p, arr in zip(self.ul_var, state["ul_var"]):
            p.update(jt.array(arr, str(p.dtype)))
        for b, arr in zip(walk(self.ll_model)[2], state.get("ll_buffers") or []):
            b.update(jt.array(arr, str(b.dtype)).stop_grad())
        if state.get("ll_opt"):
            load_optimizer_state(self.ll_opt, state["ll_opt"])
        load_optimizer_state(self.ul_opt, state["ul_opt"], lr=self._schedules_ul_lr())
        if self.init_opt is not None and state.get("init_opt"):
            load_optimizer_state(self.init_opt, state["init_opt"])
        saved = state.get("operators") or {}
        for op in self.composition.operators:
            name = type(op).name
            if saved.get(name):
                # not stop_grad: methods differentiate at their memory (MESO's grad f at
                # theta); each array keeps its dtype (jt.array alone makes float64 float32)
                self.memories[name] = {
                    k: [jt.array(a, str(np.asarray(a).dtype)) for a in arrays]
                    for k, arrays in saved[name].items()}
            else:
                self.memories.pop(name, None)
        if "history" in state:
            self.history = [dict(h) for h in state["history"]]

    def _schedules_ul_lr(self) -> bool:
        """True when an operator sets the upper learning rate every iteration (DM)."""
        return any(getattr(type(op), "schedules_ul_lr", False)
                   for op in self.composition.operators)


def _arrays(memory) -> dict:
    """A memory as NumPy arrays (written to checkpoints)."""
    return {k: [v.numpy().copy() for v in vs] for k, vs in memory.items()}


def _operator_schema(op, live: dict, lower: tuple, upper: tuple):
    """An operator's memory schema from the operator itself: its live memory when it holds
    one (exact shapes), else what it declares (``memory_schema``: SABA's tables of rows),
    else lists shaped like the lower or the upper variables; an empty memory (a
    checkpoint written before it ran) is accepted too."""
    from ..contract.stateschema import ListsLike, OrEmpty, schema_of

    if live:
        return OrEmpty(schema_of(live))
    declared = type(op).memory_schema(lower, upper)
    if declared is None:
        return ListsLike({"lower variables": lower, "upper variables": upper})
    return OrEmpty(declared)

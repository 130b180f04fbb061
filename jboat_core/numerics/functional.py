"""A functional view of a ``jittor.Module`` with a trajectory of parameter snapshots.

This is the part upstream borrowed from ``higher`` (``innerloop_ctx``), written for Jittor:

* ``FunctionalModel(module)(*inputs, params=[...])`` runs the module's own ``execute`` with
  the given Vars substituted for the lower-level variables (tied parameters included) and
  restores the originals afterwards; without ``params`` it uses the newest snapshot.
* Only the lower-level variables are substituted (``variables=``, default every trainable
  parameter): upper-level variables living in the same module (DARTS' architecture
  weights) stay the user's Vars, so gradients reach them.
* ``parameters(time=k)`` is snapshot k (0 = the real lower-level variables themselves, so
  gradients with respect to ``time=0`` reach them; -1/None = newest). Snapshots are distinct
  Var objects: updates are out of place (upstream's in-place ``p -= lr * g`` aliased every
  snapshot to the newest weights).
* ``track=False`` keeps only y_0 and the newest snapshot (memory O(1) in the number of steps).
* Buffers (stop-grad Vars such as BatchNorm running statistics) are copied at construction;
  calls update the copies, the real module's buffers are left as they are
  (``write_back_buffers`` copies them over when the solver adopts the inner loop's result).
* Attribute access behaves like the user's module: ``fmodel._criterion``,
  ``fmodel.classifier(h)``, ``fmodel._loss(x, t)`` (methods and sub-modules run with the
  newest snapshot substituted), ``fmodel.weight`` (the newest snapshot of that variable).
"""

from __future__ import annotations

import inspect
from contextlib import contextmanager

from ..platform._jittor import jittor
from ..errors import OperatorRuntimeError


def is_buffer(var, module=None) -> bool:
    """True for a stop-grad Var that is not a trainable parameter put in eval mode
    (``Module.eval()`` stop-grads every parameter and remembers which were trainable)."""
    if not var.is_stop_grad():
        return False
    backup = getattr(module, "backup_grad_state", None) if module is not None else None
    return not (backup and backup.get(id(var)))


def trainable_parameters(module) -> list:
    """``module.parameters()`` without buffers (e.g. BatchNorm running statistics)."""
    return [p for p in module.parameters() if not is_buffer(p, module)]


def walk(module) -> tuple[list, dict, list]:
    """One walk of ``module``: ``(trainable parameters, {id: [(dict, key) places]},
    buffers)``, in ``module.parameters()`` order; a tied parameter has several places,
    buffers are stop-grad Vars such as BatchNorm running statistics."""
    jt = jittor()
    slots: dict[int, list[tuple[dict, str]]] = {}
    every: list = []

    def visit(parents, key, mod, name):
        store = mod.params if isinstance(mod, jt.nn.ParameterList) else mod.__dict__
        for k, value in list(store.items()):
            if isinstance(k, str) and k.startswith("_"):
                continue
            if isinstance(value, jt.Var):
                places = slots.get(id(value))
                if places is None:
                    slots[id(value)] = places = []
                    every.append(value)
                places.append((store, k))

    module.dfs([], None, visit, None)
    params, buffers = [], []
    for p in every:
        (buffers if is_buffer(p, module) else params).append(p)
    return params, slots, buffers


class FunctionalModel:
    """Functional lower-level model with a trajectory store.

    Parameters
    ----------
    module : jittor.Module
        The real lower-level model; its lower-level variables are y_0.
    track : bool
        Keep every snapshot differentiably (needed by unrolled operators).
    variables : list of jittor.Var, optional
        The lower-level variables to substitute (parameters of ``module``, matched by
        identity); default every trainable parameter. ``parameters()`` and ``params=``
        lists follow the module's order (``module.parameters()``) restricted to them.
    """

    def __init__(self, module, track: bool = True, variables=None):
        self.module = module
        self.track = bool(track)
        params, slots, buffers = walk(module)
        if variables is not None:
            chosen = {id(v) for v in variables}
            missing = [i for i, v in enumerate(variables) if id(v) not in slots]
            if missing:
                raise OperatorRuntimeError(
                    "FunctionalModel", "variables", f"variable {missing[0]} (shape "
                    f"{list(variables[missing[0]].shape)}) is not an attribute of "
                    f"{type(module).__name__}; only Vars the module holds can be substituted")
            params = [p for p in params if id(p) in chosen]
        self._initial = params
        self._slots = [slots[id(p)] for p in params]
        self._index = {id(p): i for i, p in enumerate(params)}
        # Buffers (BatchNorm statistics) are copied once; calls update the copies and never
        # write back to the real module unless the solver asks (write_back_buffers).
        self._real_buffers = buffers
        self._buffers = [b.clone().stop_grad() for b in buffers]
        self._buffer_index = {id(b): i for i, b in enumerate(buffers)}
        buffer_slots = [slots[id(b)] for b in buffers]
        self._all_slots = self._slots + buffer_slots
        # Flat (dict, key, index) list and the first place of each slot: one loop per call.
        self._places = [(store, key, i) for i, places in enumerate(self._all_slots)
                        for store, key in places]
        self._heads = [places[0] for places in self._all_slots]
        self._n = len(params)
        self._history = [list(self._initial)]
        self._steps = 0
        self.tape = None  # checkpointed reverse mode (numerics.tape) when set

    # -- trajectory ----------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of updates recorded so far (K after K inner steps)."""
        return self._steps

    @property
    def variables(self) -> list:
        """The real lower-level variables, in ``parameters()`` order (= snapshot 0)."""
        return list(self._initial)

    def parameters(self, time: int | None = None) -> list:
        """Snapshot ``time`` (0..steps, or -1/None for the newest). With a checkpointed
        inner loop (``tape``), an intermediate snapshot is recomputed from the nearest
        checkpoint (gradients through it are the tape's)."""
        if time is None or time == -1 or time == self.steps:
            return list(self._history[-1])
        if time == 0:
            return list(self._initial)
        if self.tape is not None:
            return self.tape.iterate(time)
        if not 0 < time <= self.steps:
            raise OperatorRuntimeError("FunctionalModel", "parameters",
                                       f"time={time} is out of range 0..{self.steps}")
        if not self.track:
            raise OperatorRuntimeError(
                "FunctionalModel", "parameters",
                f"time={time} requested but the trajectory is not tracked (only time=0 and "
                "the newest are kept); an operator that needs intermediate snapshots must "
                "declare needs_trajectory=True")
        return list(self._history[time])

    def update_params(self, new_params) -> None:
        """Record a new snapshot (appended when tracking, else replacing the newest)."""
        new_params = list(new_params)
        if len(new_params) != self._n:
            raise OperatorRuntimeError(
                "FunctionalModel", "update_params",
                f"got {len(new_params)} parameters, the lower model has {self._n}")
        if self.track:
            self._history.append(new_params)
        else:
            self._history = [new_params]
        self._steps += 1

    def segment(self, params, buffers, track: bool = True) -> "FunctionalModel":
        """A functional model of the same module that starts at ``params`` with its own
        copies of ``buffers`` (a checkpoint): the tape recomputes a segment of the inner
        loop on it, leaving this model's snapshots and buffers as they are."""
        import copy

        seg = copy.copy(self)
        seg.track, seg.tape = bool(track), None
        seg._history, seg._steps = [list(params)], 0
        seg._buffers = [b.clone().stop_grad() for b in buffers]
        return seg

    # -- buffers ---------------------------------------------------------------------
    def buffers(self) -> list:
        """The functional copies of the module's buffers (BatchNorm statistics)."""
        return list(self._buffers)

    @contextmanager
    def frozen_buffers(self):
        """Within the block, calls may update the buffer copies (BatchNorm in train mode);
        afterwards they hold their values from before the block again. Used for
        evaluations that are not lower-level steps (PTT's F after each step)."""
        if not self._buffers:
            yield
            return
        saved = [b.clone().stop_grad() for b in self._buffers]
        try:
            yield
        finally:
            for b, value in zip(self._buffers, saved):
                b.update(value)

    def write_back_buffers(self, values=None) -> None:
        """Copy buffer values (default: the current functional copies) into the real
        module's buffers, e.g. when the solver warm-starts y_0 with y_K."""
        values = self._buffers if values is None else values
        for real, value in zip(self._real_buffers, values):
            real.update(value.detach())

    # -- evaluation ----------------------------------------------------------------
    def _check(self, params):
        if params is None:
            return self._history[-1]
        if not isinstance(params, (list, tuple)):
            params = list(params)
        if len(params) != self._n:
            raise OperatorRuntimeError(
                "FunctionalModel", "call",
                f"params has {len(params)} entries but {type(self.module).__name__} has "
                f"{len(self._slots)} lower-level variables (pass them in parameters() order)")
        return params

    def _swap_in(self, params) -> list:
        """Put ``params`` (checked; default the newest snapshot) and the buffer copies in
        the module's places; returns what they held, for ``_swap_out``."""
        if params.__class__ is not list or len(params) != self._n:  # else: checked already
            params = self._check(params)
        values = [*params, *self._buffers] if self._buffers else params
        saved = [store[key] for store, key in self._heads]
        for store, key, i in self._places:
            store[key] = values[i]
        return saved

    def _swap_out(self, saved) -> None:
        for store, key, i in self._places:
            store[key] = saved[i]

    @contextmanager
    def substituted(self, params=None):
        """Within the block, the module holds ``params`` (default: the newest snapshot)
        in place of its lower-level variables, and the buffer copies."""
        saved = self._swap_in(params)
        try:
            yield self.module
        finally:
            self._swap_out(saved)

    def __call__(self, *args, params=None, **kwargs):
        # _swap_in / _swap_out inlined (no generator, no helper calls): this runs once per
        # objective evaluation, i.e. once per inner step.
        if params.__class__ is not list or len(params) != self._n:
            params = self._check(params)
        places = self._places
        values = [*params, *self._buffers] if self._buffers else params
        saved = [store[key] for store, key in self._heads]
        for store, key, i in places:
            store[key] = values[i]
        try:
            return self.module(*args, **kwargs)
        finally:
            for store, key, i in places:
                store[key] = saved[i]

    def view(self, value):
        """``value`` (an attribute of the module or of a sub-module) as seen through
        this functional model: lower variables and buffers map to their snapshot / copy,
        sub-modules and bound methods run with the newest snapshot substituted."""
        jt = jittor()
        if isinstance(value, jt.Var):
            i = self._index.get(id(value))
            if i is not None:
                return self._history[-1][i]
            j = self._buffer_index.get(id(value))
            return self._buffers[j] if j is not None else value
        if isinstance(value, jt.nn.Module) or (
                inspect.ismethod(value) and isinstance(value.__self__, jt.nn.Module)):
            return _Bound(self, value)
        return value

    def __getattr__(self, item):
        # Only reached for names FunctionalModel itself does not define: the module's.
        module = self.__dict__.get("module")
        if module is None or (item.startswith("__") and item.endswith("__")):
            raise AttributeError(item)
        return self.view(getattr(module, item))


class _Bound:
    """A sub-module or bound method of the lower model, called with the functional
    model's newest snapshot substituted (or ``params=``)."""

    def __init__(self, fmodel: FunctionalModel, target):
        self._fmodel, self._target = fmodel, target

    def __call__(self, *args, params=None, **kwargs):
        fmodel = self._fmodel
        saved = fmodel._swap_in(params)
        try:
            return self._target(*args, **kwargs)
        finally:
            fmodel._swap_out(saved)

    def __getattr__(self, item):
        if item.startswith("__") and item.endswith("__"):
            raise AttributeError(item)
        return self._fmodel.view(getattr(self._target, item))

    def __repr__(self) -> str:
        return f"<functional view of {self._target!r}>"

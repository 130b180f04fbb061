"""A functional view of a ``jittor.Module`` with a trajectory of parameter snapshots.

This is the part upstream borrowed from ``higher`` (``innerloop_ctx``), written for Jittor:

* ``FunctionalModel(module)(*inputs, params=[...])`` runs the module's own ``execute`` with
  the given parameter Vars substituted (tied parameters included) and restores the
  originals afterwards; without ``params`` it uses the newest snapshot.
* ``parameters(time=k)`` is snapshot k (0 = the real lower-level parameters themselves, so
  gradients with respect to ``time=0`` reach them; -1/None = newest). Snapshots are distinct
  Var objects: updates are out of place (upstream's in-place ``p -= lr * g`` aliased every
  snapshot to the newest weights).
* ``track=False`` keeps only y_0 and the newest snapshot (memory O(1) in the number of steps).
* Buffers (stop-grad Vars such as BatchNorm running statistics) are copied at construction;
  calls update the copies, the real module's buffers are left as they were.
"""

from __future__ import annotations

from ._jittor import jittor
from .errors import OperatorRuntimeError


def trainable_parameters(module) -> list:
    """``module.parameters()`` without stop-grad buffers (e.g. BatchNorm running stats)."""
    return [p for p in module.parameters() if not p.is_stop_grad()]


def parameter_slots(module) -> tuple[list, list, list]:
    """One walk of ``module``: its trainable parameters (``module.parameters()`` order,
    which is this walk's first-seen order), for each of them the ``(dict, key)`` places
    that hold it (a tied parameter has several), and the same places for its buffers
    (stop-grad Vars, e.g. BatchNorm running statistics)."""
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
    params = [p for p in every if not p.is_stop_grad()]
    return (params, [slots[id(p)] for p in params],
            [slots[id(p)] for p in every if p.is_stop_grad()])


class FunctionalModel:
    """Functional lower-level model with a trajectory store.

    Parameters
    ----------
    module : jittor.Module
        The real lower-level model; its trainable parameters are y_0.
    track : bool
        Keep every snapshot differentiably (needed by unrolled operators).
    """

    def __init__(self, module, track: bool = True):
        self.module = module
        self.track = bool(track)
        self._initial, self._slots, buffer_slots = parameter_slots(module)
        # Buffers (BatchNorm statistics) are copied once; inner steps update the copies and
        # never write back to the real module (as higher's buffer_sync).
        self._buffers = [places[0][0][places[0][1]].clone().stop_grad()
                         for places in buffer_slots]
        self._all_slots = self._slots + buffer_slots
        # Flat (dict, key, index) list and the first place of each slot: one loop per call.
        self._places = [(store, key, i) for i, places in enumerate(self._all_slots)
                        for store, key in places]
        self._heads = [places[0] for places in self._all_slots]
        self._history = [list(self._initial)]
        self._steps = 0

    # -- trajectory ----------------------------------------------------------------
    @property
    def steps(self) -> int:
        """Number of updates recorded so far (K after K inner steps)."""
        return self._steps

    def parameters(self, time: int | None = None) -> list:
        """Snapshot ``time`` (0..steps, or -1/None for the newest)."""
        if time is None or time == -1 or time == self.steps:
            return list(self._history[-1])
        if time == 0:
            return list(self._initial)
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
        if len(new_params) != len(self._initial):
            raise OperatorRuntimeError(
                "FunctionalModel", "update_params",
                f"got {len(new_params)} parameters, the lower model has {len(self._initial)}")
        if self.track:
            self._history.append(new_params)
        else:
            self._history = [new_params]
        self._steps += 1

    # -- evaluation ----------------------------------------------------------------
    def __call__(self, *args, params=None, **kwargs):
        if params is None:
            params = self._history[-1]
        elif not isinstance(params, (list, tuple)):
            params = list(params)
        if len(params) != len(self._slots):
            raise OperatorRuntimeError(
                "FunctionalModel", "call",
                f"params has {len(params)} entries but {type(self.module).__name__} has "
                f"{len(self._slots)} trainable parameters (pass them in parameters() order)")
        values = [*params, *self._buffers] if self._buffers else params
        saved = [store[key] for store, key in self._heads]
        try:
            for store, key, i in self._places:
                store[key] = values[i]
            return self.module(*args, **kwargs)
        finally:
            for store, key, i in self._places:
                store[key] = saved[i]

    def __getattr__(self, item):
        # Objectives may reach helpers of the user's module (e.g. ``lower_model.n_classes``).
        if item.startswith("_") or item in ("module", "track"):
            raise AttributeError(item)
        return getattr(self.module, item)

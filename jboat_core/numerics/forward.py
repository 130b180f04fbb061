"""Forward-mode hyper-gradients: the tangents dy_k/dx carried alongside the inner loop
(Franceschi et al., "Forward and reverse gradient-based hyperparameter optimization",
ICML 2017), memory independent of K, cost proportional to the number of upper scalars.

For every upper scalar x_i (direction e_i) the inner step y_{k+1} = U(y_k, g_k, s_k; h),
g_k = grad_y f(x, y_k) (s the optimizer state, h its hyper-parameters, which may be upper
variables themselves: a learned learning rate or momentum) gives

    dg_k = grad_y [ <grad_y f, t_k> + <grad_x f, e_i> ]           (one double backward)
    (t_{k+1}, u_{k+1}) = J_U (t_k, dg_k, u_k, e_i)                  (U is elementwise)

with t = dy/dx_i and u = ds/dx_i. Jittor has no forward mode (``jittor.gradfunctional.jvp``
is a double backward too); J_U v is taken here by the same trick on U alone: w(c) =
J_U^T c is built once per step with c a free variable, then J_U v = d<w(c), v>/dc per
direction (two small backward passes over elementwise operations). The hyper-gradient is
g_i = dF/dx_i + <grad_y F(y_K), t_K> (``FMD``).
"""

from __future__ import annotations

import warnings

from ..errors import OperatorRuntimeError
from ..platform._jittor import jittor
from .autodiff import vdot

#: Most upper-level scalars forward mode accepts (its cost is one double backward per
#: scalar and inner step; reverse mode is the choice above it).
MAX_SCALARS = 256


def directions(upper) -> list[tuple[int, int]]:
    """(variable index, flat element index) of every upper scalar."""
    return [(j, e) for j, x in enumerate(upper) for e in range(int(x.numel()))]


class Tangents:
    """dy_k/dx (and d state_k/dx) for every upper scalar, advanced step by step.

    Parameters
    ----------
    upper : list of jittor.Var
        The upper variables x.
    lower : list of jittor.Var
        y_0 (shapes of the lower variables; y_0 does not depend on x: t_0 = 0).
    op : str
        The operator named in errors.
    limit : int
        Refuse more upper scalars than this.
    """

    def __init__(self, upper, lower, op: str = "FMD", limit: int = MAX_SCALARS):
        jt = jittor()
        self.upper, self.op = list(upper), op
        self.dirs = directions(self.upper)
        if len(self.dirs) > limit:
            raise OperatorRuntimeError(op, "config", f"forward mode carries one tangent per "
                                       f"upper scalar: {len(self.dirs)} > max_scalars={limit} "
                                       "(memory and time grow with it); use RAD (with "
                                       "checkpoint_every for long loops) or CG, or raise "
                                       f"{op}.max_scalars")
        self.t = [[jt.zeros(y.shape, y.dtype) for y in lower] for _ in self.dirs]
        self.u: list[dict] = [{} for _ in self.dirs]

    def _e(self, i: int, values) -> "jittor.Var":
        """<values, e_i>: the element of the upper-shaped ``values`` along direction i."""
        j, e = self.dirs[i]
        return values[j].reshape((-1,))[e]

    def advance(self, loss, y, opt, state_before, n_step, *, stop_grads=False, detach=False,
                first_order=None):
        """Carry the tangents through one inner step taken from ``y`` (the iterate before
        it) with ``loss`` = f(x, y) (its graph to y and x), ``opt`` the twin after the step
        and ``state_before`` its state before it (a ``Snapshot``). ``stop_grads``: the step
        stopped the gradient's dependence on x and y (FOA); ``first_order`` is its 0.1
        name (deprecated, goes in jboat 0.3)."""
        if first_order is not None:
            warnings.warn("Tangents.advance(first_order=) is now stop_grads=; the old name "
                          "goes in jboat 0.3", DeprecationWarning, stacklevel=2)
            stop_grads = bool(first_order)
        jt = jittor()
        if detach:  # a step outside the graph (RGT's truncation): d/dx is cut there
            self.t = [[t * 0.0 for t in ts] for ts in self.t]
            self.u = [{} for _ in self.dirs]
            return
        y = list(y)
        grads = list(jt.grad(loss, y + self.upper))
        gy, gx = grads[:len(y)], grads[len(y):]
        # the gradient's tangent per direction (zero through stopped gradients: FOA)
        dg = []
        for i, ts in enumerate(self.t):
            if stop_grads:
                dg.append([jt.zeros(v.shape, v.dtype) for v in y])
                continue
            s = vdot(gy, ts) + self._e(i, gx).sum()
            d = list(jt.grad(s, y))
            dg.append(opt.reduce(d) if opt.reduce is not None else d)
        g_used = [v.detach() for v in (opt.reduce(gy) if opt.reduce is not None else gy)]
        self._through_update(y, g_used, dg, opt, state_before, n_step)

    def advance_map(self, step, y, *, detach: bool = False) -> None:
        """Carry the tangents through one step y' = step(y) of a map of y and x (PGD's
        proximal or projected step, whatever the map): t' = d_y step t + d_x step e_i,
        by the same double-backward trick as ``advance`` (``step(y_leaf)`` must return
        the new iterate with its graph to ``y_leaf`` and the upper variables).
        ``detach``: the step was taken outside the graph (RGT), the tangents restart."""
        jt = jittor()
        if detach:
            self.t = [[t * 0.0 for t in ts] for ts in self.t]
            return
        y_leaf = [v.detach() for v in y]
        out = list(step(y_leaf))
        c = [jt.zeros(v.shape, v.dtype) for v in out]
        w = list(jt.grad(vdot(out, c), y_leaf + self.upper))
        ny = len(y_leaf)
        new_t = []
        for i, (j, e) in enumerate(self.dirs):
            terms = vdot(w[:ny], self.t[i]) + w[ny + j].reshape((-1,))[e].sum()
            new_t.append([v.detach() for v in jt.grad(terms, c)])
        self.t = new_t
        jt.sync([v for ts in new_t for v in ts])

    def _through_update(self, y, g, dg, opt, before, n_step) -> None:
        """Apply J_U to every direction's (t, dg, u, e_i)."""
        jt = jittor()
        y_leaf = [v.detach() for v in y]
        s_leaf = list(before.leaves)
        keys = list(before.keys)
        saved_step = opt.n_step
        opt.n_step = n_step  # the update's own step count (Adam's bias correction)
        outs, new_state = [], [dict() for _ in y_leaf]
        for (i, key), value in zip(keys, s_leaf):
            new_state[i][key] = value
        for i, (p, gi) in enumerate(zip(y_leaf, g)):
            grp = opt.groups[i]
            outs.append(p if grp is None else opt._update(p, gi, grp, new_state[i]))
        opt.n_step = saved_step
        out_keys = [(i, k) for i, st in enumerate(new_state) for k in sorted(st)]
        out_state = [new_state[i][k] for i, k in out_keys]
        cy = [jt.zeros(v.shape, v.dtype) for v in outs]
        cs = [jt.zeros(v.shape, v.dtype) for v in out_state]
        inputs = y_leaf + g + s_leaf + self.upper
        w = list(jt.grad(vdot(outs, cy) + (vdot(out_state, cs) if cs else 0.0), inputs))
        ny, ng, ns = len(y_leaf), len(g), len(s_leaf)
        new_t, new_u = [], []
        for i in range(len(self.dirs)):
            tin = list(self.t[i]) + list(dg[i])
            tin += [self.u[i].get(k, s * 0.0) for k, s in zip(keys, s_leaf)]
            terms = vdot(w[:ny + ng + ns], tin)
            j, e = self.dirs[i]
            terms = terms + w[ny + ng + ns + j].reshape((-1,))[e].sum()
            jv = list(jt.grad(terms, cy + cs))
            new_t.append([v.detach() for v in jv[:len(cy)]])
            new_u.append({k: v.detach() for k, v in zip(out_keys, jv[len(cy):])})
        self.t, self.u = new_t, new_u
        # executed now (Jittor is lazy): memory stays flat in K instead of holding every
        # step's pending graph until the hyper-gradient is read
        jt.sync([v for ts in new_t for v in ts] + [v for us in new_u for v in us.values()])

    def hypergradient(self, upper_loss, y) -> list:
        """g = dF/dx + (dy/dx)^T grad_y F, shaped like the upper variables."""
        jt = jittor()
        y = list(y)
        grads = list(jt.grad(upper_loss, y + self.upper))
        gy, gx = [v.detach() for v in grads[:len(y)]], [v.detach() for v in grads[len(y):]]
        flat = [g.reshape((-1,)) for g in gx]
        columns: list[list] = [[] for _ in self.upper]
        for i, (j, e) in enumerate(self.dirs):
            columns[j].append(flat[j][e] + vdot(gy, self.t[i]).reshape((1,)))
        return [jt.concat(col).reshape(x.shape).detach() if col else gx[j]
                for j, (col, x) in enumerate(zip(columns, self.upper))]

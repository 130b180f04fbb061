"""The composition matrix: every valid composition of the registry's hyper-gradient
operators, in float32 and float64, with three inner optimizers, with and without
checkpointing, on three lower models, each checked against its float64 target
(``jboat_core.testing.reference``).

Axes of a case (``Case``):

* the composition: ``gm_op`` (one or two dynamics operators) and ``na_op`` (one to
  three hyper-gradient operators), every combination ``parse_solver_config`` accepts
  (with the built-ins: 96);
* ``dtype``: float32 or float64 (every Var, data included);
* ``optimizer``: SGD, SGD with momentum 0.9, or Adam below;
* ``checkpoint``: 0, 2 or ``"sqrt"`` where the composition keeps the trajectory and its
  dynamics support checkpointing, else 0;
* ``model``: linear, tanh MLP (four tensors) or Conv-BatchNorm (``testing.models``);
* ``position``: ``"first"`` (alone in a new process) or ``"later"`` (after other cases in
  the same process; the cases of a process run in a given order).

The cases (and why an explicit product, not Hypothesis) are in
``jboat_core.testing.cases``, which does not import Jittor.

Each case builds a ``Problem`` (the path users run), evaluates one outer iteration
(``Problem.evaluate``; DM: two ``run_iter`` with ``return_grad``) and compares the
hyper-gradient (and DI's gradient of the initialisation) with the target at
``tolerance(case)``. Importing this module imports Jittor.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass

import numpy as np

from .cases import (LR, K, Case, all_cases, canonical, checkpointable, claim, plan_of,
                    sample)
from .models import PROXIMAL, matrix_problem
from .reference import Dynamics, Reference

#: Bumped when the problems' objectives change (cached lower solutions are then stale).
CACHE_VERSION = 2

# -- one case -------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What a case computed and how it compares with its target. ``status``: ``"ok"``,
    ``"FAIL"``, or ``"n/a"`` (the operator's claim does not apply to the case: the
    message says why)."""

    case: str
    status: str
    error: float
    tolerance: float
    target: str
    digest: str
    seconds: float
    message: str = ""

    @property
    def ok(self) -> bool:
        """Not a failure (passed, or not applicable)."""
        return self.status != "FAIL"


class NotApplicable(Exception):
    """The case's target is undefined (e.g. CG on a Hessian that is not positive
    definite: the IFT does not apply and CG stops by design)."""


class Runner:
    """Runs cases in this process, keeping the problems, converged lower points and
    float64 targets it computed (they do not depend on the position or checkpointing)."""

    def __init__(self, registry=None):
        from ..plugins.registry import get_registry

        self.registry = registry or get_registry()
        self._problems: dict = {}
        self._starts: dict = {}
        self._targets: dict = {}

    def problem(self, case: Case):
        """The ``MatrixProblem`` of the case (made once per model and kind)."""
        case = canonical(case, self.registry)
        implicit_meta = case.meta and any(n in ("CG", "NS") for n in case.na)
        key = (case.model, case.meta, implicit_meta)
        if key not in self._problems:
            self._problems[key] = matrix_problem(case.model, "meta" if case.meta else
                                                 "weighting", seed=1,
                                                 proximal=PROXIMAL if implicit_meta else 0.0)
        return self._problems[key]

    def start(self, case: Case):
        """y_0: the lower level's solution for implicit terminals on the weighting problem
        (the IFT at a converged y), else the problem's initial values."""
        prob = self.problem(case)
        canon = canonical(case, self.registry)
        if canon.meta or canon.terminal not in ("CG", "NS"):
            return None
        key = (case.model, case.dtype)
        if key not in self._starts:
            self._starts[key] = [np.asarray(a, case.dtype).astype(np.float64)
                                 for a in converged_cached(prob, case.dtype)]
        return self._starts[key]

    def dynamics(self, case: Case) -> Dynamics:
        """What the reference reproduces of the case's lower loop (K, optimizer, RGT,
        PTT, GDA's schedule): the built-ins' documented claims (RGT: T = its
        ``truncate_iter``; PTT: pessimistic), else what the chain's ``DynamicsPlan``
        declares (a third-party modifier's truncation or pessimistic point)."""
        canon, plan = canonical(case, self.registry), plan_of(case.na, self.registry)
        real = dict(zip(canon.gm + canon.na, case.gm + case.na))
        gda = None
        if "GDA" in canon.gm:
            cfg = self.registry.get(real["GDA"]).cls.config_model()
            gda = (cfg.alpha_init, cfg.alpha_decay)
        truncate = self.registry.get(real["RGT"]).cls.config_model().truncate_iter \
            if "RGT" in canon.na else plan.truncate
        pessimistic = "PTT" in canon.na or plan.pessimistic
        return Dynamics(K, case.optimizer, LR[case.optimizer], truncate, pessimistic, gda)

    def sections(self, case: Case, ref: Reference) -> dict:
        """Operator settings of the case: CG to convergence, NS with a convergent step
        (keyed by the operators' own names)."""
        canon = canonical(case, self.registry)
        real = dict(zip(canon.na, case.na))
        out: dict = {}
        if "CG" in canon.na:
            n = sum(int(np.prod(np.shape(a))) for a in ref.rounded.init)
            out[real["CG"]] = {"k": 3 * n + 10,
                               "tolerance": 1e-12 if case.dtype == "float64" else 1e-6}
        if "NS" in canon.na:
            out[real["NS"]] = {"k": 20, "alpha": self.ns_alpha(case, ref)}
        return out

    def ns_alpha(self, case: Case, ref: Reference) -> float:
        """NS's step: half the inverse of the largest Hessian eigenvalue (convergent) at
        the point the case's lower loop reaches, kept per lower loop: its dynamics (PTT's
        k*, RGT, GDA, the optimizer) are in the key, so that no case takes a step made for
        another chain."""
        dyn = self.dynamics(case)
        key = ("ns", case.model, case.meta, case.dtype, case.gm, dyn)
        if key not in self._targets:
            t, y = ref.point(ref.x0, dyn)
            H, *_ = ref.second_order(ref.x0, y, ref.alpha_at(t, dyn))
            self._targets[key] = float(0.5 / np.linalg.eigvalsh(H).max())
        return self._targets[key]

    def at_point(self, case: Case) -> bool:
        """Whether the target is a formula at the evaluated point (implicit operators and
        closed forms): it is then taken at the run's own point, so that the check is of
        the operator's math alone (an Adam trajectory from a stationary point follows the
        sign of rounding noise, which differs between float32 and float64). With PTT the
        run's k* is used too (F at nearly tied iterates may order them differently in
        float32 and float64)."""
        term = canonical(case, self.registry).terminal
        return term in ("NS", "IGA", "FD") or (
            term != "DM" and self.registry.get(case.terminal).cls.approximates == "implicit")

    def target(self, case: Case, ref: Reference, at=None):
        """(flat float64 target, its description, DI's target of dF/dy_0 or None); ``at``
        the run's evaluated point ``(t, y)`` for ``at_point`` targets."""
        key = (case.gm, case.na, case.dtype, case.optimizer, case.model)
        if at is not None or key not in self._targets:
            value = self._compute_target(case, ref, at)
            if at is not None:
                return value
            self._targets[key] = value
        return self._targets[key]

    def _compute_target(self, case: Case, ref: Reference, at=None):
        dyn = self.dynamics(case)
        canon = canonical(case, self.registry)
        term = canon.terminal
        cls = self.registry.get(case.gm[-1] if term == "DM" else case.terminal).cls
        init = None
        if term == "DM":
            return dm_target(ref, dyn, canon, self.registry, cls), \
                "DM's formulas, 2 iterations", None
        if at is not None and at[0] is None:  # a point that is no iterate: the run's own F
            return self._own_differences(case), "central differences of the run's own F", None
        if term == "NS":
            sec = self.sections(case, ref)[case.terminal]
            g, what = ref.implicit(dyn, "neumann", sec["alpha"], sec["k"], at=at), "NS's series"
        elif term == "IGA":
            g, what = ref.iga(dyn, at), "IGA's closed form"
        elif term == "FD":
            r = cls.config_model().r
            g, what = ref.darts(dyn, r, dyn.lr, at), "FD's closed form (DARTS)"
        elif cls.approximates == "implicit":
            _require_positive_definite(ref, dyn, at, term)
            g, what = ref.implicit(dyn, at=at), "implicit (IFT, dense solve)"
        elif cls.approximates == "initialisation" and "FOA" in canon.na:
            g, what = ref.first_order_maml(dyn, at), "first-order MAML: grad_y F(y_t)"
        elif cls.approximates in ("unrolled", "initialisation"):
            t = at[0] if at else None
            g = well_conditioned(lambda h: ref.unrolled(dyn, t, h), "dF(y_t(x))/dx")
            what = "central differences of F(y_t(x))"
        else:
            raise ValueError(f"{term} declares no target (approximates is empty)")
        if "DI" in canon.gm:
            init = self._init_target(case, ref, dyn, at)
        return g, what, init

    def foreign_modifiers(self, case: Case) -> list[str]:
        """The chain's modifiers without a built-in claim (a third party's)."""
        return [n for n in case.na if not claim(self.registry.get(n).cls)
                and self.registry.get(n).cls.role == "modifier"]

    def run_point(self, case: Case, ref: Reference, st) -> tuple:
        """``(t, y)``: the point the chain's terminal received (read back from its
        ``ChainState``) and its step t: k* when the dynamics were pessimistic, K without a
        third party's modifier (the built-ins' points are their claims), else the iterate
        of the reference's trajectory the point equals (None: it is no iterate)."""
        y = [np.asarray(v.numpy(), np.float64) for v in st.ll_point()]
        if st.k_star > 0:
            return st.k_star, y
        if st.point is None or not self.foreign_modifiers(case):
            return K, y
        ys = ref.trajectory(ref.x0, self.dynamics(case))
        flat = np.concatenate([np.ravel(a) for a in y])
        close = 1e-9 if case.dtype == "float64" else 1e-5
        for t, yt in enumerate(ys):
            other = np.concatenate([np.ravel(a) for a in yt])
            if np.linalg.norm(flat - other) <= close * max(1.0, np.linalg.norm(other)):
                return t, y
        return None, y

    def _own_differences(self, case: Case) -> np.ndarray:
        """Central differences of the run's own upper loss as a function of x (what the
        composition evaluates, at the point its modifiers choose), for a modifier whose
        point is no iterate of the lower loop; refused when its plan truncates or stops
        inner gradients (the run's own map then differs from what is differentiated)."""
        from .reference import central_differences

        plan = plan_of(case.na, self.registry)
        if plan.truncate or plan.stop_inner_grads:
            raise ValueError(f"{'+'.join(case.na)}: a modifier chose a point that is no iterate "
                             "of the lower loop while the plan truncates or stops inner "
                             "gradients: no float64 target is defined; state why the kit "
                             "cannot check it (unchecked = 'why')")
        problem, built = self._own
        xs = built.ul_var
        shapes = [tuple(v.shape) for v in xs]
        x0 = np.concatenate([np.ravel(v.numpy()).astype(np.float64) for v in xs])

        def value(flat):
            """The run's upper loss with x = ``flat``."""
            i = 0
            for v, shape in zip(xs, shapes):
                n = int(np.prod(shape))
                v.update(jt_var(flat[i:i + n].reshape(shape), v.dtype))
                i += n
            return float(problem.evaluate(built.ll_feed, built.ul_feed, 0).upper_loss)

        try:
            return central_differences(value, x0)
        finally:
            value(x0)

    def _init_target(self, case: Case, ref: Reference, dyn: Dynamics, at=None):
        """dF(y_t)/dy_0 (DI) through a tracked trajectory (t: the run's k* or K); zeros
        when untracked."""
        if not checkpointable(case.gm, case.na, self.registry) and not dyn.pessimistic:
            return np.zeros(sum(int(np.prod(np.shape(a))) for a in ref.rounded.init))
        x0 = ref.x0
        t = at[0] if at else (ref.k_star(x0, dyn) if dyn.pessimistic else dyn.K)
        y_base = ref.y_start(x0)
        flat0 = np.concatenate([np.ravel(a) for a in y_base])
        from .reference import central_differences

        def value(flat):
            """F(y_t(y_0)) for a flat y_0."""
            y0 = ref.split_y(flat, y_base)
            early = y_base if dyn.truncate else None
            if dyn.truncate:  # RGT: y_0 reaches nothing through the constant steps
                y0 = y_base
            return ref.value_F(x0, ref.trajectory(x0, dyn, x0 if early else None, y0)[t])

        return well_conditioned(lambda h: central_differences(value, flat0, h), "dF(y_t)/dy_0")

    def run(self, case: Case) -> Outcome:
        """Run ``case`` here; an exception becomes a failed ``Outcome``."""
        start = time.perf_counter()
        try:
            return self._run(case, start)
        except NotApplicable as exc:
            return Outcome(case.id, "n/a", 0.0, 0.0, "", "", time.perf_counter() - start,
                           str(exc))
        except Exception as exc:  # noqa: BLE001 - a failing case is reported, not raised
            return Outcome(case.id, "FAIL", math.inf, 0.0, "", "",
                           time.perf_counter() - start, f"{type(exc).__name__}: {exc}")

    def _run(self, case: Case, start: float) -> Outcome:
        if case.fo:
            return self._run_solver(case, start)
        return self._run_composition(case, start)

    def _run_solver(self, case: Case, start: float) -> Outcome:
        """A first-order or stochastic solver: its outer iterations against its formula
        (``firstorder_reference`` on ridge, ``stochastic_reference`` on the quadratic)."""
        from . import firstorder_reference as fo
        from . import stochastic_reference as st

        name = canonical(case, self.registry).fo
        if name in fo.CASES:
            errors, what = fo.follow("ridge", name, case.dtype, self.registry, op=case.fo), \
                "its formula, 2 iterations on ridge"
            tol = fo.TOL[case.dtype]
        elif name in st.CASES:
            errors, what = st.follow("quadratic", name, case.dtype, self.registry,
                                     op=case.fo), \
                "its paper's step from its draws, 3 iterations on the quadratic"
            tol = st.TOL[case.dtype]
        else:
            raise NotApplicable(f"{case.fo}: no float64 reference of this solver's formula "
                                "here (its own tests, and the conformance kit's known "
                                "solution, check it)")
        label, err = max(errors, key=lambda e: e[1])
        return Outcome(case.id, "ok" if err <= tol else "FAIL", err, tol, what,
                       hashlib.sha256(repr(errors).encode()).hexdigest()[:16],
                       time.perf_counter() - start, f"worst: {label}")

    def _run_composition(self, case: Case, start: float) -> Outcome:
        from ..platform._jittor import jittor
        from ..solver.problem import Problem

        jt = jittor()
        canon = canonical(case, self.registry)
        prob = self.problem(case)
        y0 = self.start(case)
        ref = Reference(prob, case.dtype, y0)
        built = (prob if y0 is None else _with_init(prob, y0)).build(case.dtype)
        lr = LR[case.optimizer]
        ll_opt = {"sgd": lambda v: jt.optim.SGD(v, lr),
                  "momentum": lambda v: jt.optim.SGD(v, lr, momentum=0.9),
                  "adam": lambda v: jt.optim.Adam(v, lr)}[case.optimizer](built.ll_var)
        cfg = {"gm_op": list(case.gm), "na_op": list(case.na), "lower_iters": K,
               **self.sections(case, ref)}
        if case.checkpoint:
            cfg["checkpoint_every"] = case.checkpoint
        if canon.terminal == "DM":
            cfg["return_grad"] = True
        problem = Problem(cfg, ll_objective=built.ll_objective,
                          ul_objective=built.ul_objective, ll_model=built.ll_model,
                          ul_model=built.ul_model, ll_opt=ll_opt,
                          ul_opt=jt.optim.SGD(built.ul_var, 0.01), ll_var=built.ll_var,
                          ul_var=built.ul_var, gda_loss=built.gda_loss,
                          registry=self.registry)
        if canon.terminal == "DM":
            for it in range(2):
                out = problem.run_iter(built.ll_feed, built.ul_feed, it)
        else:
            out = problem.evaluate(built.ll_feed, built.ul_feed, 0)
        at = None
        if canon.terminal != "DM" and (self.at_point(case) or "DI" in canon.gm
                                       or self.dynamics(case).pessimistic
                                       or self.foreign_modifiers(case)):
            # the run's point (the same computation again)
            ev = problem.composition.evaluate(built.ll_feed, built.ul_feed, 0,
                                              init_gradients="DI" in canon.gm)
            at = self.run_point(case, ref, ev.chain_state)
            self._own = (problem, built)
        want, what, want_init = self.target(case, ref, at)
        grads = [g.numpy() for g in out["hyper_gradients"]]
        got = np.concatenate([np.ravel(g).astype(np.float64) for g in grads])
        parts = [got]
        err = _relative(got, want)
        note = ""
        if want_init is not None:
            init = np.concatenate([np.ravel(g.numpy()).astype(np.float64)
                                   for g in out["ll_init_gradients"]])
            parts.append(init)
            e_init = _relative(init, want_init, scale=np.linalg.norm(want))
            note = f"hyper-gradient {err:.1e}, dF/dy0 {e_init:.1e}"
            err = max(err, e_init)
        if any(g.dtype != np.dtype(case.dtype) for g in grads):
            return Outcome(case.id, "FAIL", err, 0.0, what, "", time.perf_counter() - start,
                           f"hyper-gradient dtype {grads[0].dtype}, variables {case.dtype}")
        tol = tolerance(case, what)
        digest = hashlib.sha256(b"".join(np.ascontiguousarray(p).tobytes()
                                         for p in [*grads, *parts[1:]])).hexdigest()[:16]
        return Outcome(case.id, "ok" if err <= tol else "FAIL", err, tol, what, digest,
                       time.perf_counter() - start, note)


def converged_cached(prob, dtype: str) -> list:
    """``Reference(prob, dtype).converged()``, kept on disk (in ``JBOAT_MATRIX_CACHE``,
    default a folder of the system's temporary folder) under a hash of the problem: a
    case run alone in a new process does not solve the lower level again."""
    import os
    import tempfile
    from pathlib import Path

    from . import models

    digest = hashlib.sha256(json.dumps(
        [CACHE_VERSION, models.DECAY, prob.model, prob.kind, prob.proximal, dtype,
         *[np.asarray(v).tolist() for v in prob.data.values()],
         *[np.asarray(v).tolist() for v in prob.init],
         None if prob.x0 is None else np.asarray(prob.x0).tolist()]).encode()).hexdigest()[:20]
    folder = Path(os.environ.get("JBOAT_MATRIX_CACHE")
                  or Path(tempfile.gettempdir()) / f"jboat-matrix-{os.getuid()}")
    path = folder / f"converged-{digest}.npz"
    try:
        with np.load(path) as data:
            return [data[f"arr_{i}"] for i in range(len(data.files))]
    except (OSError, ValueError, KeyError):
        pass
    y = Reference(prob, dtype).converged()
    folder.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, *y)
    os.replace(tmp, path)
    return y


def well_conditioned(differences, what: str) -> np.ndarray:
    """``differences(h)`` at the reference step h and at h/10; ``NotApplicable`` when they
    disagree by more than 1e-5 relative (the quantity is ill-conditioned there, e.g. a
    derivative through Adam's steps at a nearly stationary point, of order lr / |g|: no
    float64 target can be trusted, nor any run)."""
    from .reference import FD_STEP

    a, b = differences(FD_STEP), differences(FD_STEP / 10)
    gap = float(np.linalg.norm(a - b)) / max(float(np.linalg.norm(b)), FLOOR)
    if gap > 1e-5:
        raise NotApplicable(f"{what} is ill-conditioned here: central differences at "
                            f"h = {FD_STEP:g} and {FD_STEP / 10:g} disagree by {gap:.2g} "
                            f"(norm {float(np.linalg.norm(b)):.3g})")
    return b


def _require_positive_definite(ref: Reference, dyn: Dynamics, at, name: str) -> None:
    """``NotApplicable`` when the Hessian at the evaluated point is not positive definite."""
    t, y = at or ref.point(ref.x0, dyn)
    H, *_ = ref.second_order(ref.x0, y, ref.alpha_at(t, dyn))
    low = float(np.linalg.eigvalsh((H + H.T) / 2).min())
    if low <= 0:
        raise NotApplicable(f"{name} claims the IFT hyper-gradient, which needs a positive "
                            f"definite Hessian; at this point its smallest eigenvalue is "
                            f"{low:.3g} (CG stops at non-positive curvature by design)")


def _with_init(prob, y0):
    from dataclasses import replace
    return replace(prob, init=[np.asarray(a) for a in y0])


#: The smallest norm errors are taken relative to: the problems' hyper-gradients are of
#: order 0.01-1, and a target below this (PTT at k* = 1 after Adam's first, sign-like step:
#: 1e-8) is compared in absolute terms (tolerance x FLOOR).
FLOOR = 1e-3


def _relative(got: np.ndarray, want: np.ndarray, scale: float | None = None) -> float:
    """|got - want| / max(|want|, ``scale``, FLOOR)."""
    scale = max(float(np.linalg.norm(want)) if scale is None else float(scale),
                float(np.linalg.norm(want)), FLOOR)
    return float(np.linalg.norm(got - want)) / scale


def tolerance(case: Case, what: str) -> float:
    """Relative tolerance in norm: float64 against float64 targets is limited by the
    central differences (1e-6) or exact (1e-9: closed forms, dense IFT with CG run to
    convergence); float32 by its arithmetic over a few hundred operations."""
    if case.dtype == "float32":
        return 5e-3 if case.model == "convbn" else 2e-3
    return 1e-6 if "central differences" in what else 1e-8


def jt_var(a, dtype):
    """A Jittor Var of ``a`` in ``dtype``."""
    from ..platform._jittor import jittor

    return jittor().array(np.asarray(a), str(dtype))


def dm_target(ref: Reference, dyn: Dynamics, case: Case, registry, cls=None) -> np.ndarray:
    """DM's hyper-gradient at the second of two outer iterations (x held, ``return_grad``):
    v_1 = v_0 - s_0 (H v_0 - b), v_0 = 0; y_1 = y - eta grad_y phi; g = c - M^T v_1 at y_1 (y
    after NGD's K steps when NGD runs first), phi = f, or GDA's phi at alpha_t = mu0
    (t+1)^(-1/p)."""
    cfg = (cls or registry.get("DM").cls).config_model()
    rule = "CG" if case.na == ("CG",) else "RAD"
    eta, x0 = dyn.lr, ref.x0
    y = ref.y_start(x0)
    v = None
    g = None
    for t in range(2):
        alpha = cfg.mu0 * (t + 1) ** (-1.0 / cfg.p) if dyn.gda else None
        if "NGD" in case.gm:
            inner = Dynamics(dyn.K, dyn.optimizer, dyn.lr, 0, False, dyn.gda)
            y = ref.trajectory(x0, inner, y0=y)[-1]
        H, M, b, c = ref.second_order(x0, y, alpha)
        v = np.zeros_like(b) if v is None else v
        g = c - M.T @ v
        r = H @ v - b
        if rule == "CG":
            step = (r @ r) / (r @ (H @ r) + 1e-12)
        elif alpha is None:
            step = cfg.eta0 * (t + 1) ** (-cfg.tau / 2) * eta
        else:
            power = {"s1": 2, "s2": 1, "s3": 0}[cfg.strategy]
            step = (t + 1) ** (-cfg.tau / 2) * alpha ** power * eta
        v = v - step * r
        gy = ref.grad_f(x0, y, alpha)
        y = [a - eta * b for a, b in zip(y, gy)]
    return g


def main(argv=None) -> int:
    """``python -m jboat_core.testing.matrix [--list] [--sample N] [--json FILE]``: run the
    cases in this process (positions ``later`` in order; a ``first`` case is run alone
    in a new process) and print one line per case and a summary."""
    p = argparse.ArgumentParser(prog="python -m jboat_core.testing.matrix")
    p.add_argument("--list", action="store_true", help="list the cases and exit")
    p.add_argument("--sample", type=int, default=0, help="run the CI sample of this size")
    p.add_argument("--json", help="write every outcome to this file (each one is also "
                   "appended to FILE.partial as it ends, so an interrupted run loses nothing)")
    p.add_argument("--resume", action="store_true", help="with --json: take the outcomes "
                   "in FILE.partial of an interrupted run and run only the other cases")
    p.add_argument("--only", help="run the cases whose id contains this text")
    p.add_argument("--shard", help="I/N: run the I-th of N shards (0-based; a case's "
                   "'first' and 'later' positions stay in one shard); shards run at once "
                   "on one machine need a warm Jittor kernel cache")
    args = p.parse_args(argv)
    if args.resume and not args.json:
        p.error("--resume continues the run whose outcomes --json FILE names: add --json")
    cases = all_cases()
    if args.sample:
        cases = sample(cases, args.sample)
    if args.only:
        cases = [c for c in cases if args.only in c.id]
    if args.shard:
        cases = shard(cases, args.shard, p)
    if args.list:
        for c in cases:
            print(c.id)
        print(f"{len(cases)} cases")
        return 0
    try:
        return run_cases(cases, args.json, resume=args.resume)
    except ProgressError as exc:
        p.error(str(exc))


def shard(cases: list[Case], spec: str, parser=None) -> list[Case]:
    """The cases of shard ``"I/N"``: every N-th composition (all its positions) from the
    I-th, so that N processes together run each case once."""
    try:
        i, n = (int(v) for v in spec.split("/"))
        if not 0 <= i < n:
            raise ValueError
    except ValueError:
        msg = f"--shard {spec!r}: I/N with 0 <= I < N, e.g. 0/2"
        if parser is not None:
            parser.error(msg)
        raise ValueError(msg) from None
    stems: dict = {}
    for c in cases:
        stems.setdefault(c.id.rsplit("-", 1)[0], len(stems))
    return [c for c in cases if stems[c.id.rsplit("-", 1)[0]] % n == i]


class ProgressError(ValueError):
    """The progress file of an interrupted run is in the way, or unreadable."""


def load_progress(path: str, resume: bool) -> dict[str, Outcome]:
    """The outcomes an interrupted run appended to ``path`` (one JSON object a line), by
    case id; ``{}`` when there is none. Without ``resume`` an existing file is an error
    (it would be lost): the message says how to continue or start over."""
    if not os.path.exists(path):
        return {}
    done: dict[str, Outcome] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
        for n, line in enumerate(lines, 1):
            try:
                o = Outcome(**json.loads(line))
            except (ValueError, TypeError):
                if n == len(lines):  # the line being written when the run ended
                    break
                raise ProgressError(f"{path}: line {n} is not an outcome; delete the file "
                                    "to start over") from None
            done[o.case] = o
    except OSError as exc:
        raise ProgressError(f"{path}: {exc.strerror or exc}") from None
    if not resume and done:
        raise ProgressError(f"{path} holds {len(done)} outcomes of an interrupted run: add "
                            "--resume to run only the other cases, or delete it to start over")
    return done


def run_cases(cases: list[Case], out: str | None = None, resume: bool = False) -> int:
    """Run ``cases`` (``first`` ones each in a new process), print and summarise. With
    ``out``, each outcome is appended to ``out + ".partial"`` as it ends and the whole
    list written to ``out`` at the end (the partial file is then removed); ``resume``
    takes the outcomes already in the partial file instead of running those cases."""
    progress = f"{out}.partial" if out else None
    done = load_progress(progress, resume) if progress else {}
    if done:  # written again without a line cut short by the end of the last run
        with open(progress + ".tmp", "w", encoding="utf-8") as fh:
            fh.writelines(json.dumps(asdict(o)) + "\n" for o in done.values())
        os.replace(progress + ".tmp", progress)
        print(f"{len(done)} outcomes taken from {progress}; running the other cases",
              flush=True)
    runner, outcomes, t0 = Runner(), [], time.perf_counter()
    log = open(progress, "a", encoding="utf-8") if progress else None
    try:
        for i, case in enumerate(cases):
            if case.id in done:
                outcomes.append(done[case.id])
                continue
            res = (run_first(case, f"{out}.stderr" if out else None)
                   if case.position == "first" else runner.run(case))
            outcomes.append(res)
            if log is not None:
                log.write(json.dumps(asdict(res)) + "\n")
                log.flush()
            print(f"[{i + 1}/{len(cases)}] {res.status} {res.case} err={res.error:.2e} "
                  f"tol={res.tolerance:.0e} {res.seconds:.1f}s {res.message}", flush=True)
    finally:
        if log is not None:
            log.close()
    carried = sum(c.id in done for c in cases)
    failed = [o for o in outcomes if not o.ok]
    na = [o for o in outcomes if o.status == "n/a"]
    pairs, differ = position_pairs(outcomes)
    print(f"{len(outcomes)} cases, {len(failed)} failed, {len(na)} not applicable, "
          f"{time.perf_counter() - t0:.0f} s"
          + (f" ({carried} outcomes taken from {progress})" if carried else "")
          + f"; {pairs} cases run both first in a new process "
          f"and later in this one, {len(differ)} of them with different results"
          + (f": {differ[:5]}" if differ else ""))
    failed += [o for o in outcomes if o.case.rsplit("-", 1)[0] in differ]
    if out:
        with open(out, "w") as fh:
            json.dump([asdict(o) for o in outcomes], fh, indent=1)
        os.remove(progress)
    return 1 if failed else 0


def position_pairs(outcomes: list[Outcome]) -> tuple[int, list[str]]:
    """(number of cases run in both positions, those whose digests differ): a case's
    results must not depend on what ran before it in the process."""
    by: dict = {}
    for o in outcomes:
        stem, _, pos = o.case.rpartition("-")
        if o.digest:
            by.setdefault(stem, {})[pos] = o.digest
    both = {k: v for k, v in by.items() if len(v) == 2}
    return len(both), [k for k, v in both.items() if v["first"] != v["later"]]


def run_first(case: Case, stderr_dir: str | None = None) -> Outcome:
    """``case`` alone in a new Python process (position ``first``). When that process
    fails, its whole standard error (Jittor's backtrace of a crash, say) is kept in
    ``stderr_dir`` (default a new temporary folder), and the outcome's message names the
    file."""
    import subprocess
    import tempfile

    code = ("import json, sys; from dataclasses import asdict; "
            "from jboat_core.testing.matrix import Case, Runner; "
            "c = Case(**json.loads(sys.argv[1])); "
            "c = Case(tuple(c.gm), tuple(c.na), c.dtype, c.optimizer, c.checkpoint, c.model, "
            "c.position, c.fo); print(json.dumps(asdict(Runner().run(c))))")
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(asdict(case))],
                          capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0 or not proc.stdout.strip():
        folder = stderr_dir or tempfile.mkdtemp(prefix="jboat-matrix-")
        os.makedirs(folder, exist_ok=True)
        kept = os.path.join(folder, "".join(ch if ch.isalnum() or ch in "-+_." else "_"
                                            for ch in case.id) + ".stderr")
        with open(kept, "w", encoding="utf-8") as fh:
            fh.write(proc.stderr)
        last = proc.stderr.strip().splitlines()[-1:] or ["(no standard error)"]
        return Outcome(case.id, "FAIL", math.inf, 0.0, "", "", time.perf_counter() - start,
                       f"process failed (exit {proc.returncode}): {last[0][:200]}; its "
                       f"standard error: {kept}")
    return Outcome(**json.loads(proc.stdout.strip().splitlines()[-1]))


if __name__ == "__main__":
    sys.exit(main())

"""Correctness by default: the float64 targets the conformance kit checks every operator
against, whatever its kind (``check_correct`` in ``jboat_core.testing.conformance``).

Everything runs through ``Problem.evaluate`` / ``Problem.run_iter`` (the path users run)
on the ridge problem of ``jboat_core.testing.problems`` in float64 (Jittor's
``auto_convert_64_to_32`` off for the check, restored after), against references in
NumPy float64:

* **hyper-gradient operators** (with NGD, SGD(0.1), K = 5 unless ``exact_settings``
  says otherwise): ``"unrolled"``: dF(y_K(x))/dx through the K steps (forward-mode
  Jacobians, the exact derivative of the unrolled map, equal to its central differences);
  ``"implicit"``: the IFT hyper-gradient grad_x F - (d2f/dxdy)' H^-1 grad_y F with the
  lower level started at y* (so y_K = y*); ``"initialisation"``: dF(y_K)/dy_0. What is
  not declared (``approximates``) is inferred from ``stage``: ``"implicit"`` ->
  implicit; ``keeps_initialisation`` -> initialisation; otherwise either unrolled or
  implicit is accepted and the one that matched is reported. A declared claim that fails
  while another target matches fails with a one-line hint naming what to declare.
  Tolerance: ``RTOL`` relative in norm (``exact_settings["rtol"]`` overrides it).
* **dynamics operators** (composed with RAD, then with PTT + RAD): RAD's hyper-gradient
  equals the central differences (step ``FD_STEP``) of the upper loss F(y_K(x)) the
  operator's own dynamics produce in float64 (RAD differentiates exactly what the
  dynamics computed), to ``DYNAMICS_RTOL``; and the dynamics descend: from y_0, f(x, y_K)
  < f(x, y_0) and f(x, y_4K) < f(x, y_K), with K = 5 steps of SGD(0.1).
* **modifiers** (role ``"modifier"``), and the built-ins with a closed form of their own
  (``COMPOSED``: IGA, DM): the operator's default composition (NGD, it, then RAD or its
  required partner) runs as a case of the composition matrix (``matrix.Runner``: linear
  lower model, SGD, K = 4, float64) against the matrix's float64 target. Which target:
  the ``claim`` of each operator (``cases.claim``: the built-in it is or derives from, so
  a variant keeps its parent's claim: PTT evaluates at k* = 1 + argmax_k F(y_k), RGT's
  first ``truncate_iter`` steps are constant, FOA + IAD is first-order MAML, IGA's and
  DM's formulas); a third party's modifier is held to its ``DynamicsPlan`` (``truncate``:
  those steps constant; ``pessimistic``: the point must be y_k*) and to the point it
  passes on, read back from the terminal's ``ChainState``: an iterate y_t gives
  dF(x, y_t(x))/dx (central differences through the reference's own lower loop), another
  point the central differences of the run's own F as a function of x (undefined, hence
  refused, with a truncating or stop-gradient plan). Tolerances: ``matrix.tolerance``
  (1e-6 against differences, 1e-8 against closed forms).
* **first-order and stochastic solvers** with a float64 reference trajectory (the
  built-ins and their variants: ``firstorder_reference.follow`` on ridge,
  ``stochastic_reference.follow`` on the quadratic from the solver's own draws): the
  hyper-gradient and the new lower variables of each outer iteration equal the
  reference's to 1e-10 (``TOL``). Without one (a third party's solver): on the ridge
  problem with F + 0.05 |x|^2 and the upper variable held (``return_grad``), after
  ``SOLVER_ITERS`` outer iterations (whole batches) the direction the solver returns
  points along the exact hyper-gradient grad Phi(x) of Phi(x) = F(x, y*(x)): cosine
  >= ``SOLVER_COSINE`` (a sign error gives about -1). ``exact_settings`` may set
  ``iterations``, ``lower_iters`` and section keys.

An operator the kit cannot check declares why (``unchecked = "why"``): the check is then
a pytest skip with that reason. No built-in does.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from .cases import claim
from .compose import IMPLICIT_CHAIN, IMPLICIT_SECTION

#: Relative tolerance of a hyper-gradient operator against its target (float64 against
#: float64: rounding, and an iterative solver's own stopping rule).
RTOL = 1e-5
#: Relative tolerance of RAD against central differences of F(y_K(x)) (truncation h^2 and
#: rounding 1e-16/h of the differences, about 1e-9 here).
DYNAMICS_RTOL = 1e-6
#: Central-difference step on x.
FD_STEP = 1e-5
#: Outer iterations (x held) before a first-order solver's direction is compared.
SOLVER_ITERS = 60
#: Minimum cosine between a solver's direction and the exact hyper-gradient.
SOLVER_COSINE = 0.9
#: The explicit x-term of F in the solvers' check (a finite bilevel optimum).
SOLVER_RHO = 0.05

TARGETS = ("unrolled", "implicit", "initialisation")


@contextlib.contextmanager
def float64():
    """Jittor keeps float64 (``auto_convert_64_to_32 = 0``) inside, restored after."""
    from ..platform._jittor import jittor

    jt = jittor()
    old = jt.flags.auto_convert_64_to_32
    jt.flags.auto_convert_64_to_32 = 0
    try:
        yield jt
    finally:
        jt.flags.auto_convert_64_to_32 = old


def _problem(cfg, registry, y0=None, rho: float = 0.0, ul_lr: float = 0.01, lr: float = 0.1):
    """``(Problem, ridge)`` in float64 for solver config ``cfg``."""
    from ..solver.problem import Problem
    from .compose import _Switch
    from .problems import jt, ridge_problem

    prob = ridge_problem(y0=y0, dtype="float64")
    sw = _Switch(prob, explicit_x=bool(rho))
    sw.rho = rho
    from .compose import _classes, lower_solver

    problem = Problem({"copy_last_param": True, **cfg}, ll_objective=sw.f,
                      ul_objective=sw.F, ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, lr),
                      ul_opt=jt.optim.SGD(prob.ul_var, ul_lr), gda_loss=sw.gda,
                      registry=registry, ll_solver=lower_solver(prob, _classes(cfg, registry)))
    return problem, prob


def _flat(vs) -> np.ndarray:
    return np.concatenate([np.ravel(v.numpy()).astype(np.float64) for v in vs])


def _rel(got, want) -> float:
    return float(np.linalg.norm(got - want) / max(np.linalg.norm(want), 1e-30))


def _settings(cls):
    """``(lower_iters, rtol, iterations, section)`` from ``cls.exact_settings``."""
    s = dict(cls.exact_settings)
    K = int(s.pop("lower_iters", 5))
    rtol = float(s.pop("rtol", 0) or 0)
    iters = int(s.pop("iterations", SOLVER_ITERS))
    return K, rtol, iters, ({cls.name: s} if s else {})


# -- hyper-gradient operators ------------------------------------------------------------
def hypergradient_candidates(cls) -> tuple[tuple[str, ...], bool]:
    """``(targets, declared)``: the declared claim, or the targets inferred from the
    metadata (stage ``implicit``; ``keeps_initialisation``; else unrolled or implicit)."""
    if cls.approximates:
        return (cls.approximates,), True
    if cls.keeps_initialisation:
        return ("initialisation",), False
    if cls.stage == "implicit":
        return ("implicit",), False
    return ("unrolled", "implicit"), False


def hypergradient_error(cls, target: str, registry, lr: float = 0.1) -> tuple[float, str]:
    """Relative error of ``cls``'s hyper-gradient against ``target`` and a description."""
    from .compose import default_composition

    K, _, _, section = _settings(cls)
    y0 = None
    if target == "implicit":
        from .problems import ridge_problem
        y0 = ridge_problem(dtype="float64").solution()
    cfg = {**default_composition(cls), "lower_iters": K, **section}
    problem, prob = _problem(cfg, registry, y0=y0, lr=lr)
    ys, _ = prob.trajectory(K, lr)
    want = {"unrolled": lambda: prob.unrolled(K, lr),
            "implicit": lambda: prob.exact(ys[K]),
            "initialisation": lambda: prob.dF_dy0(K, lr)}[target]()
    got = _flat(problem.evaluate(prob.ll_feed, prob.ul_feed, 0)["hyper_gradients"])
    return _rel(got, want), f"got {np.round(got, 6).tolist()}, want {np.round(want, 6).tolist()}"


def check_hypergradient(cls, registry, lr: float = 0.1) -> str:
    """Check a hyper-gradient operator against its (declared or inferred) target; return
    the target that matched. A modifier, or a variant of a built-in with a closed form
    of its own (``COMPOSED``), is checked in its composition (``check_composition``)."""
    if cls.role == "modifier" or claim(cls) in COMPOSED:
        return check_composition(cls, registry)
    _, rtol, _, _ = _settings(cls)
    rtol = rtol or RTOL
    candidates, declared = hypergradient_candidates(cls)
    errors = {}
    for target in candidates:
        errors[target] = hypergradient_error(cls, target, registry, lr)
        if errors[target][0] <= rtol:
            return target
    others = [t for t in TARGETS if t not in errors]
    for target in others:
        err, _ = errors[target] = hypergradient_error(cls, target, registry, lr)
        if err <= rtol:
            what = (f"declares approximates={candidates[0]!r}" if declared else
                    f"declares no approximates (stage {cls.stage!r} suggests "
                    f"{' or '.join(candidates)})")
            raise AssertionError(
                f"{cls.name} {what} but its hyper-gradient matches the {target!r} target "
                f"(relative error {err:.2g}): declare approximates = {target!r}")
    detail = "; ".join(f"{t}: relative error {e:.3g} ({d})" for t, (e, d) in errors.items())
    head = (f"{cls.name} declares approximates={candidates[0]!r}" if declared else
            f"{cls.name} (no approximates declared)")
    raise AssertionError(
        f"{head} but its hyper-gradient matches no float64 target to rtol {rtol:g}: "
        f"{detail}. If it approximates by design, state the settings under which it is "
        "exact (exact_settings) or why it cannot be checked (unchecked = 'why')")


# -- compositions: modifiers, closed forms, DM --------------------------------------------
#: Built-ins whose target is a closed form of their own in the composition matrix
#: (``jboat_core.testing.reference``), checked there rather than against the unrolled or
#: implicit targets: IGA's rank-one formula, DM's two primal-dual iterations.
COMPOSED = ("IGA", "DM")


def composition_case(cls):
    """The composition matrix's case of ``cls``'s default composition (float64, SGD, the
    linear lower model, no checkpointing)."""
    from .cases import Case
    from .compose import default_composition

    cfg = default_composition(cls)
    return Case(tuple(cfg["gm_op"]), tuple(cfg["na_op"]), "float64", "sgd", 0, "linear",
                "later")


def check_composition(cls, registry) -> str:
    """Run ``cls``'s default composition as a case of the composition matrix
    (``matrix.Runner``: its float64 target by claim and plan, at the point read back from
    the terminal's ``ChainState``); return the target's description."""
    from .matrix import Runner

    case = composition_case(cls)
    out = Runner(registry).run(case)
    assert out.status != "FAIL" or np.isfinite(out.error), (
        f"{cls.name}: its composition {'+'.join(case.gm)} > {'+'.join(case.na)} could not be "
        f"checked: {out.message}")
    assert out.status == "ok", (
        f"{cls.name}: its composition {'+'.join(case.gm)} > {'+'.join(case.na)} is off "
        f"{out.target or 'its float64 target'} by {out.error:.3g} (relative > "
        f"{out.tolerance:g}) {out.message}; a modifier must honour its DynamicsPlan "
        "(pessimistic: evaluate at y_k*; truncate: the first T steps constant) and the point "
        "it passes on; if no float64 target applies, state why (unchecked = 'why')")
    return out.target


# -- dynamics operators ------------------------------------------------------------------
def _dynamics_config(cls, na: list[str], K: int, section: dict) -> dict:
    gm = [cls.name] + (["NGD"] if cls.role == "modifier" and cls.name != "NGD" else [])
    partner = [p for p in cls.requires_any if p not in gm]
    chain = list(na) if not partner else [*[n for n in na if n != "RAD"], partner[0]]
    extra = IMPLICIT_SECTION if tuple(chain) == IMPLICIT_CHAIN else {}
    return {"gm_op": gm, "na_op": chain, "lower_iters": K, **extra, **section}


def rad_error(cls, registry, na=("RAD",)) -> tuple[float, str]:
    """Relative error of the chain's hyper-gradient after ``cls``'s dynamics against the
    central differences of the upper loss those dynamics produce, in float64."""
    K, _, _, section = _settings(cls)
    problem, prob = _problem(_dynamics_config(cls, list(na), K, section), registry)
    got = _flat(problem.evaluate(prob.ll_feed, prob.ul_feed, 0)["hyper_gradients"])
    x = prob.ul_model.w
    x0 = x.numpy().copy()
    want = np.zeros_like(x0)
    for i in range(len(x0)):
        h = FD_STEP * max(1.0, abs(x0[i]))
        vals = []
        for sgn in (1, -1):
            e = x0.copy()
            e[i] += sgn * h
            x.update(_var(e))
            vals.append(problem.evaluate(prob.ll_feed, prob.ul_feed, 0).upper_loss)
        want[i] = (vals[0] - vals[1]) / (2 * h)
    x.update(_var(x0))
    return _rel(got, want), f"got {np.round(got, 6).tolist()}, want {np.round(want, 6).tolist()}"


def _var(a):
    from .problems import jt
    return jt.array(a, "float64")


def lower_values(cls, registry, Ks=(0, 5, 20), chain=("RAD",)) -> list[float]:
    """f(x, y_K) after ``cls``'s dynamics from y_0, for each K of ``Ks`` (0: y_0)."""
    _, _, _, section = _settings(cls)
    out = []
    for K in Ks:
        if K == 0:
            from .problems import ridge_problem
            p = ridge_problem(dtype="float64")
            out.append(_f(p, p.y0()))
            continue
        cfg = {**_dynamics_config(cls, list(chain), K, section), "return_grad": True}
        problem, prob = _problem(cfg, registry)
        problem.run_iter(prob.ll_feed, prob.ul_feed, 0)
        out.append(_f(prob, prob.y0()))
    return out


def _f(prob, y) -> float:
    """f(x, y) of the ridge problem in float64."""
    D = prob.np_data
    return float(np.sum((D["A1"] @ y - D["b1"]) ** 2) / (2 * D["n"])
                 + 0.5 * np.sum(np.exp(prob.x()) * y * y))


def check_dynamics(cls, registry) -> str:
    """Check a dynamics operator: RAD (and PTT + RAD) differentiate exactly what its
    dynamics computed, and its dynamics descend f."""
    if cls.provides_hypergradient and claim(cls) in COMPOSED:
        return check_composition(cls, registry)
    if cls.provides_hypergradient:
        raise AssertionError(
            f"{cls.name} provides its own hyper-gradient (provides_hypergradient): the kit "
            "has no generic float64 target for it; state why (unchecked = 'why') and test "
            "its formula in your own tests")
    _, rtol, _, _ = _settings(cls)
    rtol = rtol or DYNAMICS_RTOL
    from ..errors import OperatorRuntimeError

    if not cls.differentiable:  # solved outside the graph: an implicit chain follows it
        err, detail = rad_error(cls, registry, IMPLICIT_CHAIN)
        assert err <= rtol, (
            f"{cls.name}: CG (implicit) after its dynamics is off the central differences of "
            f"F(y_K(x)) by {err:.3g} (relative > {rtol:g}): the state it returns does not "
            f"declare the optimality its y_K satisfies (state.optimality); {detail}")
        f0, fK, f4K = lower_values(cls, registry, chain=IMPLICIT_CHAIN)
        assert fK < f0 and f4K <= fK * (1 + 1e-12), (
            f"{cls.name}: its lower solve does not decrease f on the ridge problem "
            f"(f(y_0) = {f0:.6g}, f(y_5) = {fK:.6g}, f(y_20) = {f4K:.6g})")
        return "implicit"
    for na in (("RAD",), ("PTT", "RAD")):
        try:
            err, detail = rad_error(cls, registry, na)
        except OperatorRuntimeError as exc:
            raise AssertionError(
                f"{cls.name}: {' + '.join(na)} cannot run after its dynamics ({exc}); honour "
                "the plan: with plan.pessimistic evaluate F after each step and return "
                "k_star (docs/plugins.md, 'Your own inner update')") from exc
        assert err <= rtol, (
            f"{cls.name}: {' + '.join(na)} after its dynamics is off the central differences "
            f"of F(y_K(x)) by {err:.3g} (relative > {rtol:g}): its inner update breaks the "
            f"graph RAD differentiates (a detach, an in-place update?); {detail}")
    f0, fK, f4K = lower_values(cls, registry)
    assert fK < f0 and f4K < fK, (
        f"{cls.name}: its dynamics do not descend the lower objective on the ridge problem "
        f"(f(y_0) = {f0:.6g}, f(y_5) = {fK:.6g}, f(y_20) = {f4K:.6g}): check the sign of "
        "each term of its update")
    return "unrolled"


# -- first-order and stochastic solvers --------------------------------------------------
def exact_phi_gradient(prob) -> np.ndarray:
    """grad Phi(x) of Phi(x) = F(y*(x)) + SOLVER_RHO |x|^2 (ridge, float64)."""
    y = prob.solution()
    return prob.exact(y) + 2 * SOLVER_RHO * prob.x()


def solver_cosine(cls, registry) -> tuple[float, np.ndarray, np.ndarray]:
    """``(cosine, direction, exact)`` after ``iterations`` outer iterations, x held."""
    K, _, iters, section = _settings(cls)
    cfg = {"fo_op": [cls.name], "lower_iters": K, "return_grad": True, **section}
    problem, prob = _problem(cfg, registry, rho=SOLVER_RHO)
    for t in range(iters):
        record = problem.run_iter(prob.ll_feed, prob.ul_feed, t)
    got = _flat(record["hyper_gradients"])
    want = exact_phi_gradient(prob)
    cos = float(got @ want / max(np.linalg.norm(got) * np.linalg.norm(want), 1e-30))
    return cos, got, want


def trajectory_errors(cls, registry) -> list | None:
    """``[(label, relative error)]`` of ``cls``'s outer iterations (hyper-gradient and new
    lower variables) against the float64 NumPy trajectory of the built-in it is or
    derives from (``firstorder_reference.follow`` on ridge, ``stochastic_reference.follow``
    on the quadratic, from its own draws), and the tolerance; None without a reference."""
    from . import firstorder_reference as fo
    from . import stochastic_reference as st

    name = claim(cls)
    if name in fo.CASES:
        return fo.follow("ridge", name, "float64", registry, op=cls.name), fo.TOL["float64"]
    if name in st.CASES:
        return st.follow("quadratic", name, "float64", registry, op=cls.name), \
            st.TOL["float64"]
    return None


def check_solver(cls, registry) -> str:
    """Check a first-order or stochastic solver: its outer iterations follow its float64
    reference trajectory when there is one (``trajectory_errors``), else its direction
    points along the exact hyper-gradient once its lower level has settled."""
    found = trajectory_errors(cls, registry)
    if found is not None:
        errors, tol = found
        label, err = max(errors, key=lambda e: e[1])
        assert err <= tol, (
            f"{cls.name}: its outer iterations leave the float64 trajectory of "
            f"{claim(cls)}'s formula at {label} (relative error {err:.3g} > {tol:g}): "
            f"{[(lb, float(f'{e:.3g}')) for lb, e in errors]}")
        return "trajectory"
    cos, got, want = solver_cosine(cls, registry)
    assert cos >= SOLVER_COSINE, (
        f"{cls.name}: after {_settings(cls)[2]} outer iterations at a fixed x its direction "
        f"has cosine {cos:.3f} < {SOLVER_COSINE} with the exact hyper-gradient of F(x, y*(x)) "
        f"(a sign error gives about -1): got {np.round(got, 6).tolist()}, want "
        f"{np.round(want, 6).tolist()}; set exact_settings (iterations, lower_iters, section "
        "keys) under which it converges, or state why it cannot (unchecked = 'why')")
    return "solution"


def check(cls, registry) -> str:
    """Run the kind's check in float64; return what matched (skip when ``unchecked``)."""
    reason = getattr(cls, "unchecked", "")
    if reason:
        pytest.skip(f"{cls.name} is unchecked: {reason}")
    from .compose import _registry

    registry = _registry(cls, registry)
    with float64():
        if cls.kind == "hypergradient":
            return check_hypergradient(cls, registry)
        if cls.kind == "dynamics":
            return check_dynamics(cls, registry)
        return check_solver(cls, registry)

"""Conformance of components (linear solvers and prox maps), built-in or third-party,
checked by default against exact float64 references.

    from jboat_core.testing.components import component_tests
    TestMySolver = component_tests(MY_SOLVER)      # a LinearSolver or ProxMap declaration

What is checked, in float64 on Jittor Vars (the way the implicit operators and PGD call
the function), each with its tolerance:

* **linear solvers** (``solve(matvec, b, *, rmatvec, maxiter, tol) -> x``): on a system
  inside every method's domain (A = I - E with ||E|| <= 1/2, so CG, MINRES and the Neumann
  series converge too), symmetric positive definite and, unless the solver declares
  ``requires_symmetric``, non-symmetric, with b given as two blocks of different shapes:
  x equals ``numpy.linalg.solve`` to 1e-8 relative after ``MAXITER`` iterations; a zero
  right-hand side gives zeros, not NaN.
* **prox maps** (``prox(z, t, **options) -> Var``, defaults of the declared options): the
  value has z's shape and dtype; it is firmly non-expansive,
  ||p(a) - p(b)||^2 <= <p(a) - p(b), a - b> (every prox of a convex function and every
  projection onto a convex set is [1]); a projection is idempotent, p(p(z)) = p(z); a
  prox with t -> 0 is the identity; reverse mode through it equals central differences
  in z and, for a prox, in t shaped as the declaration's ``weights`` says (one weight per
  coordinate or per group: how PGD's weighted penalties reach the upper variables) to
  1e-6 relative at a random point (off the kinks, where the derivative exists).

References
----------
[1] Bauschke H., Combettes P., "Convex Analysis and Monotone Operator Theory in Hilbert
Spaces", Springer 2011, Prop. 12.28 (prox firmly non-expansive) and 4.16 (projections).
"""

from __future__ import annotations

import numpy as np
import pytest

#: Iterations given to a linear solver on the kit's 7-dimensional systems.
MAXITER = 200
#: Relative tolerance of a solver's x against ``numpy.linalg.solve``.
SOLVE_RTOL = 1e-8
#: Relative tolerance of a prox map's reverse-mode derivative against central differences.
JACOBIAN_RTOL = 1e-6
#: The kit's problem size and random seed.
DIM, SEED = 7, 33


def _jt():
    from ..platform._jittor import jittor

    return jittor()


def _systems(symmetric_only: bool) -> list[tuple[str, np.ndarray]]:
    """(name, A) inside every solver's domain: A = I - E, ||E||_2 <= 1/2."""
    rng = np.random.RandomState(SEED)
    q, _ = np.linalg.qr(rng.randn(DIM, DIM))
    spd = q @ np.diag(np.linspace(0.55, 1.4, DIM)) @ q.T
    out = [("symmetric positive definite", spd)]
    if not symmetric_only:
        e = rng.randn(DIM, DIM)
        out.append(("non-symmetric", np.eye(DIM) - 0.5 * e / np.linalg.norm(e, 2)))
    return out


def _blocks(v: np.ndarray):
    jt = _jt()
    return [jt.array(v[:3].copy(), "float64"), jt.array(v[3:].reshape(2, 2).copy(), "float64")]


def _flat(vs) -> np.ndarray:
    return np.concatenate([np.ravel(v.numpy()) for v in vs]).astype(np.float64)


def _operator(A: np.ndarray):
    """matvec and rmatvec of A on two blocks, through Jittor (as a Hessian product is)."""
    jt = _jt()
    Aj, ATj = jt.array(A, "float64"), jt.array(A.T.copy(), "float64")

    def apply(M, vs):
        """M v on the two blocks, detached (as ``linear_operator`` returns it)."""
        y = (M * jt.concat([vs[0].reshape(-1), vs[1].reshape(-1)]).reshape(1, -1)).sum(1)
        return [y[:3].detach(), y[3:].reshape(2, 2).detach()]

    return (lambda vs: apply(Aj, vs)), (lambda vs: apply(ATj, vs))


def check_linear_solver(decl) -> None:
    """``decl`` (a ``LinearSolver``) solves the kit's systems to ``SOLVE_RTOL``."""
    solve = decl.load()
    rng = np.random.RandomState(SEED + 1)
    for what, A in _systems(decl.requires_symmetric):
        b = rng.randn(DIM)
        matvec, rmatvec = _operator(A)
        x = _flat(solve(matvec, _blocks(b), rmatvec=rmatvec, maxiter=MAXITER, tol=1e-14))
        want = np.linalg.solve(A, b)
        err = np.linalg.norm(x - want) / np.linalg.norm(want)
        assert err <= SOLVE_RTOL, (
            f"linear solver {decl.name!r} on a {what} system (A = I - E, ||E|| <= 1/2, "
            f"n = {DIM}, {MAXITER} iterations): relative error {err:.3g} > {SOLVE_RTOL:g} "
            f"against numpy.linalg.solve; got {np.round(x, 6).tolist()}, want "
            f"{np.round(want, 6).tolist()}" + ("" if decl.requires_symmetric else
                                                "; a symmetric-only method must declare "
                                                "requires_symmetric=True"))
        zero = _flat(solve(matvec, _blocks(np.zeros(DIM)), rmatvec=rmatvec, maxiter=5,
                           tol=0.0))
        assert np.all(zero == 0), (f"linear solver {decl.name!r}: b = 0 gives "
                                   f"{zero.tolist()}, not zeros (a 0/0 somewhere?)")


def _prox_fn(decl):
    fn = decl.load()
    options = {k: v[0] for k, v in dict(decl.options).items()}
    return lambda z, t: fn(z, t, **options)


def _value(prox, z: np.ndarray, t) -> np.ndarray:
    jt = _jt()
    tv = jt.array(np.asarray(t, np.float64), "float64") if np.ndim(t) else t
    out = prox(jt.array(z, "float64"), tv)
    assert list(out.shape) == list(z.shape) and str(out.dtype) == "float64", (
        f"returned shape {list(out.shape)} {out.dtype} for z of shape {list(z.shape)} float64")
    return out.numpy().astype(np.float64)


def check_prox_map(decl) -> None:
    """``decl`` (a ``ProxMap``) is firmly non-expansive, idempotent if a projection, the
    identity as t -> 0 if a prox, and differentiable by reverse mode where smooth."""
    prox, name = _prox_fn(decl), f"prox map {decl.name!r}"
    rng = np.random.RandomState(SEED + 2)
    t = 0.3
    for _ in range(5):
        a, b = rng.randn(DIM) * 1.5, rng.randn(DIM) * 1.5
        pa, pb = _value(prox, a, t), _value(prox, b, t)
        lhs, rhs = np.sum((pa - pb) ** 2), np.dot(pa - pb, a - b)
        assert lhs <= rhs + 1e-12, (
            f"{name}: not firmly non-expansive (||p(a) - p(b)||^2 = {lhs:.6g} > "
            f"<p(a) - p(b), a - b> = {rhs:.6g}): not the prox of a convex function or the "
            "projection onto a convex set")
    z = rng.randn(DIM) * 1.5
    if decl.projection:
        p = _value(prox, z, t)
        assert np.allclose(_value(prox, p, t), p, rtol=1e-12, atol=1e-12), (
            f"{name}: a projection must be idempotent, p(p(z)) = p(z)")
    else:
        assert np.allclose(_value(prox, z, 1e-14), z, rtol=0, atol=1e-10), (
            f"{name}: with t -> 0 a prox must be the identity")
    _check_jacobian(decl, prox, z, rng)


def _check_jacobian(decl, prox, z: np.ndarray, rng) -> None:
    jt = _jt()
    w = rng.randn(DIM)
    groups = DIM // int(dict(decl.options).get("group_size", (1,))[0])
    n_t = {"coordinate": DIM, "group": groups}.get(decl.weights, 0)
    tv = np.full(max(n_t, 1), 0.3) + 0.05 * rng.rand(max(n_t, 1))
    if not n_t:
        tv = tv[0]  # a number: no derivative in t checked
    zj, wj = jt.array(z, "float64"), jt.array(w, "float64")
    tj = jt.array(np.atleast_1d(tv), "float64") if n_t else tv
    wrt = [zj] if decl.projection or not n_t else [zj, tj]
    out = (prox(zj, None if decl.projection else tj) * wj).sum()
    got = [g.numpy().astype(np.float64) for g in jt.grad(out, wrt)]

    def value(zz, tt):
        """<w, prox(z, t)> in NumPy float64."""
        return float(np.dot(_value(prox, zz, None if decl.projection else tt), w))

    h = 1e-6
    for i, label in enumerate(("z", "t")[:len(wrt)]):
        size = DIM if label == "z" else n_t
        want = np.zeros(size)
        for j in range(size):
            e = np.zeros(size)
            e[j] = h
            args_p = (z + e, tv) if label == "z" else (z, tv + e)
            args_m = (z - e, tv) if label == "z" else (z, tv - e)
            want[j] = (value(*args_p) - value(*args_m)) / (2 * h)
        err = np.linalg.norm(got[i] - want) / max(np.linalg.norm(want), 1e-12)
        assert err <= JACOBIAN_RTOL or np.linalg.norm(got[i] - want) <= 1e-8, (
            f"prox map {decl.name!r}: reverse mode in {label} is off central differences by "
            f"{err:.3g} (relative > {JACOBIAN_RTOL:g}) at a point off the kinks: a mask or "
            f"a sort that cuts the graph? got {np.round(got[i], 6).tolist()}, want "
            f"{np.round(want, 6).tolist()}")


def check_component(decl) -> None:
    """The checks of ``decl``'s kind, in float64 (Jittor's conversion flag restored)."""
    from .correctness import float64

    checks = {"linear_solver": check_linear_solver, "prox_map": check_prox_map}
    if decl.kind not in checks:  # pragma: no cover - a new kind must add its checks here
        raise AssertionError(f"no conformance checks for component kind {decl.kind!r}")
    with float64():
        checks[decl.kind](decl)


def component_tests(decl):
    """A pytest class checking component ``decl`` (declaration problems and math)."""

    class TestComponent:
        """The declaration is valid and the math of its kind holds."""

        def test_declaration(self):
            assert not decl.problems(), decl.problems()

        @pytest.mark.jittor
        def test_math(self):
            check_component(decl)

    TestComponent.__name__ = f"TestComponent_{decl.name}"
    return TestComponent

"""Non-smooth and constrained lower levels (issue 33.2, 33.5): PGD's hyper-gradients
against exact float64 references.

* Lasso, one lambda and one per feature: the implicit hyper-gradient (CG/NS with every
  general linear solver) equals the closed form on the support,
  -(X_S'X_S/n)^{-1} s_S chained with grad F, to 1e-10 relative;
* elastic net likewise (its own closed form);
* non-negative least squares and a simplex-constrained problem against central finite
  differences of the exact solution (1e-6 relative);
* plain CG on PGD's non-symmetric system is refused in one line;
* RAD through the prox steps reaches the closed form; checkpointed RAD and FMD equal RAD;
* float32 at a stated tolerance;
* every prox map against its NumPy formula; the conformance kit on PGD.

Registries are built explicitly (PGD, the linear solvers and prox maps added), so the
tests pass whether or not the installed entry points know them.
"""

from __future__ import annotations

import numpy as np
import pytest

from jboat_core.plugins.registry import Registry
from jboat_core.testing.conformance import conformance_tests
from jboat_ops.linear_solvers import SOLVERS
from jboat_ops.pgd import PGD
from jboat_ops.prox import PROX_MAPS

pytestmark = pytest.mark.jittor

REGISTRY = Registry.load().with_classes([PGD]).with_components(SOLVERS + PROX_MAPS,
                                                                 distribution="jboat")
RTOL64 = 1e-10
#: float32 computation against the float64 closed form (measured 2.7e-7 to 4.5e-7 on
#: these problems with every solver; 1e-5 leaves room for worse conditioning).
RTOL32 = 1e-5


def _jt():
    from jboat_core import import_jittor

    jt = import_jittor()
    jt.flags.auto_convert_64_to_32 = 0
    return jt


def _problem(kind, weighted=False, rho=1.0, dtype="float64", warm=True, seed=0):
    from jboat_core.testing.sparse import sparse_problem

    base = sparse_problem(kind, rho=rho, seed=seed)
    x0 = base.x()
    if weighted:
        x0 = np.full(base.np_data["X"].shape[1], x0[0]) + \
            0.2 * np.random.RandomState(1).randn(base.np_data["X"].shape[1])
    ref = sparse_problem(kind, rho=rho, x0=x0, seed=seed)
    w = ref.solution()
    prob = sparse_problem(kind, rho=rho, x0=x0, y0=w if warm else None, dtype=dtype,
                          seed=seed)
    return prob, ref, w


def _run(prob, kind, na, section=None, rho=1.0, lower_iters=5, solver=None):
    from jboat_core import Problem
    from jboat_core.testing.sparse import pgd_config

    jt = _jt()
    cfg = {"gm_op": ["PGD"], "na_op": na, "lower_iters": lower_iters,
           "PGD": pgd_config(kind, rho), **(solver or {})}
    if section:
        cfg[na[-1]] = section
    problem = Problem(cfg, ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, 1.0 / prob.lipschitz()),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), registry=REGISTRY)
    out = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
    return out["hyper_gradients"][0].numpy().astype(np.float64)


def _rel(got, want):
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


IMPLICIT = [("CG", "gmres"), ("CG", "bicgstab"), ("CG", "normal_cg"), ("CG", "dense"),
            ("NS", "neumann")]


@pytest.mark.parametrize("op,solver", IMPLICIT, ids=[s for _, s in IMPLICIT])
@pytest.mark.parametrize("weighted", [False, True], ids=["one-lambda", "per-feature"])
def test_lasso_equals_closed_form_on_the_support(op, solver, weighted):
    prob, ref, w = _problem("lasso", weighted)
    S = np.abs(w) > 0
    assert 0 < S.sum() < len(w), "the reference Lasso must be sparse, not empty"
    got = _run(prob, "lasso", [op], {"k": 300, "tolerance": 1e-14, "linear_solver": solver})
    want = ref.exact(w)
    assert got.shape == want.shape
    assert _rel(got, want) < RTOL64, (got, want)
    if weighted:  # off the support, the weights do not move F
        assert np.all(got[~S] == 0)


def test_elastic_net_equals_closed_form():
    prob, ref, w = _problem("enet", rho=0.6)
    got = _run(prob, "enet", ["CG"], {"k": 200, "tolerance": 1e-14,
                                      "linear_solver": "gmres"}, rho=0.6)
    assert _rel(got, ref.exact(w)) < RTOL64


@pytest.mark.parametrize("kind", ["nnls", "simplex"])
def test_constrained_against_finite_differences(kind):
    prob, ref, w = _problem(kind)
    active = (w == 0).sum()
    assert 0 < active < len(w), f"{kind}: the reference must have active constraints"
    got = _run(prob, kind, ["CG"], {"k": 200, "tolerance": 1e-14, "linear_solver": "gmres"})
    fd = ref.finite_differences(1e-6)
    assert _rel(got, fd) < 1e-6, (got, fd)


def test_plain_cg_is_refused_in_one_line():
    from jboat_core.contract import OperatorRuntimeError

    prob, _, _ = _problem("lasso")
    with pytest.raises(OperatorRuntimeError) as info:
        _run(prob, "lasso", ["CG"], {"k": 20})
    msg = str(info.value)
    assert "\n" not in msg and "symmetric" in msg and "gmres" in msg


def test_rad_through_prox_steps_reaches_the_closed_form():
    prob, ref, w = _problem("lasso", weighted=True)
    got = _run(prob, "lasso", ["RAD"], lower_iters=400)
    assert _rel(got, ref.exact(w)) < 1e-6


def test_checkpointed_rad_and_fmd_equal_rad():
    prob, _, _ = _problem("lasso", weighted=True, warm=False)
    rad = _run(prob, "lasso", ["RAD"], lower_iters=12)
    prob, _, _ = _problem("lasso", weighted=True, warm=False)
    ck = _run(prob, "lasso", ["RAD"], lower_iters=12, solver={"checkpoint_every": 4})
    prob, _, _ = _problem("lasso", weighted=True, warm=False)
    fmd = _run(prob, "lasso", ["FMD"], lower_iters=12)
    assert np.linalg.norm(rad) > 0
    assert _rel(ck, rad) < 1e-12 and _rel(fmd, rad) < 1e-12, (rad, ck, fmd)


@pytest.mark.parametrize("weighted", [False, True], ids=["one-lambda", "per-feature"])
def test_lasso_float32(weighted):
    prob, ref, w = _problem("lasso", weighted, dtype="float32")
    got = _run(prob, "lasso", ["CG"], {"k": 100, "tolerance": 1e-7,
                                       "linear_solver": "gmres"})
    assert _rel(got, ref.exact(w)) < RTOL32


# -- the prox maps themselves --------------------------------------------------------
def _np_simplex(z, r=1.0):
    u = np.sort(z)[::-1]
    css = np.cumsum(u)
    k = np.arange(1, len(z) + 1)
    rho = np.max(np.where(u - (css - r) / k > 0)[0]) + 1
    return np.maximum(z - (css[rho - 1] - r) / rho, 0)


def _np_l1_ball(z, r=1.0):
    if np.abs(z).sum() <= r:
        return z
    return np.sign(z) * _np_simplex(np.abs(z), r)


Z = np.array([1.3, -0.2, 0.05, -2.1, 0.7, 0.0, 0.4, -0.9])
T = 0.3
PROX_CASES = {
    "l1": ({}, lambda z: np.sign(z) * np.maximum(np.abs(z) - T, 0)),
    "elastic_net": ({"l1_ratio": 0.6}, lambda z: np.sign(z) * np.maximum(
        np.abs(z) - T * 0.6, 0) / (1 + T * 0.4)),
    "group_l1": ({"group_size": 2}, lambda z: np.concatenate(
        [g * max(0.0, 1 - T / np.linalg.norm(g)) for g in z.reshape(-1, 2)])),
    "nonneg": ({}, lambda z: np.maximum(z, 0)),
    "box": ({"lower": -0.5, "upper": 0.5}, lambda z: np.clip(z, -0.5, 0.5)),
    "simplex": ({"radius": 1.0}, _np_simplex),
    "l1_ball": ({"radius": 2.0}, lambda z: _np_l1_ball(z, 2.0)),
    "l2_ball": ({"radius": 1.0}, lambda z: z / max(1.0, np.linalg.norm(z))),
}


@pytest.mark.parametrize("name", sorted(PROX_CASES))
def test_prox_map_values(name):
    jt = _jt()
    options, ref = PROX_CASES[name]
    fn = {p.name: p for p in PROX_MAPS}[name].load()
    got = fn(jt.array(Z, "float64"), T, **options).numpy()
    assert np.allclose(got, ref(Z), rtol=0, atol=1e-14), (got, ref(Z))


def test_weighted_l1_uses_one_weight_per_coordinate():
    jt = _jt()
    fn = {p.name: p for p in PROX_MAPS}["weighted_l1"].load()
    t = np.linspace(0.1, 1.0, len(Z))
    got = fn(jt.array(Z, "float64"), jt.array(t, "float64")).numpy()
    assert np.allclose(got, np.sign(Z) * np.maximum(np.abs(Z) - t, 0), atol=1e-15)


@pytest.mark.parametrize("name", ["simplex", "l1_ball", "l2_ball", "elastic_net"])
def test_prox_jacobian_equals_finite_differences_off_the_kinks(name):
    jt = _jt()
    options, ref = PROX_CASES[name]
    fn = {p.name: p for p in PROX_MAPS}[name].load()
    rng = np.random.RandomState(0)
    c = rng.randn(len(Z))
    z = jt.array(Z, "float64")
    (g,) = jt.grad((fn(z, T, **options) * jt.array(c, "float64")).sum(), [z])
    h = 1e-7
    fd = np.array([(c @ ref(Z + h * e) - c @ ref(Z - h * e)) / (2 * h) for e in np.eye(len(Z))])
    assert np.allclose(g.numpy(), fd, atol=1e-7), (g.numpy(), fd)


TestConformancePGD = conformance_tests(PGD, registry=REGISTRY)

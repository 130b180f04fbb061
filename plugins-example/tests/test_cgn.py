"""CGN as a jboat operator: conformance kit, registration and chain rules, exactness
against float64 references (ridge, damped ridge, an indefinite saddle-point lower level)
and composition after PTT.

Tolerance of every exactness check: cosine similarity >= 0.999 and
max |g - g_exact| / max |g_exact| < 1e-3 (Jittor computes in float32).
"""

import numpy as np
import pytest

from jboat_core import ConfigError, parse_solver_config
from jboat_core.contract import API_VERSION
from jboat_core.testing.conformance import check_returns_hypergradients, conformance_tests
from jboat_example_plugin.cgn import CGN, JBOAT_API_VERSION

from _entrypoints import plugin_entry_points

TestConformanceCGN = conformance_tests(CGN, module="jboat_example_plugin.cgn")

COSINE_MIN, REL_ERR_MAX = 0.999, 1e-3


def assert_matches(g, exact):
    g = np.asarray(g, dtype=np.float64).ravel()
    exact = np.asarray(exact, dtype=np.float64).ravel()
    cos = g @ exact / (np.linalg.norm(g) * np.linalg.norm(exact))
    rel = np.abs(g - exact).max() / np.abs(exact).max()
    assert cos >= COSINE_MIN and rel < REL_ERR_MAX, (
        f"cosine {cos:.6f} (need >= {COSINE_MIN}), relative max error {rel:.2e} "
        f"(need < {REL_ERR_MAX}):\n  got   {g}\n  exact {exact}")


def run_chain(prob, chain, registry, config=None, lower_iters=1, lr=0.1):
    """The hyper-gradient of ``chain`` after ``lower_iters`` NGD steps, as a user gets it:
    ``Problem.evaluate`` (nothing is updated)."""
    from jboat_core import Problem, import_jittor

    jt = import_jittor()
    cfg = {"gm_op": "NGD", "na_op": chain, "lower_iters": lower_iters, **(config or {})}
    problem = Problem(cfg, ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, lr),
                      ul_opt=jt.optim.SGD(prob.ul_var, 0.1), registry=registry)
    return problem.evaluate(prob.ll_feed, prob.ul_feed)


# ------------------------------------------------------------ registration -----------
def test_registered_from_the_declared_entry_point(plugin_registry):
    (ep,) = [e for e in plugin_entry_points() if e.name == "cgn"]
    assert ep.value == "jboat_example_plugin.cgn" and ep.dist.name == "jboat-example-plugin"
    assert JBOAT_API_VERSION == API_VERSION
    rec = plugin_registry.get("cgn", kind="hypergradient")
    assert rec.cls is CGN
    assert rec.origin.distribution == "jboat-example-plugin"


def test_slots_in_between_cg_and_ns(plugin_registry):
    order = {n: plugin_registry.get(n).cls.order for n in ("CG", "CGN", "NS")}
    assert order["CG"] < order["CGN"] < order["NS"]

    def na_op(names):
        return parse_solver_config({"gm_op": "NGD", "na_op": names}, plugin_registry).na_op

    assert na_op(["cgn", "ptt"]) == ["PTT", "CGN"]   # ordered by metadata, not by hand
    assert na_op(["cgn", "iad"]) == ["IAD", "CGN"]
    with pytest.raises(ConfigError, match="rule terminal-not-last"):
        na_op(["CG", "CGN"])


def test_config_defaults_and_errors():
    cfg = CGN.config_model()
    assert (cfg.k, cfg.tolerance, cfg.damping) == (10, 0.0, 0.0)
    with pytest.raises(ValueError):
        CGN.config_model(k=0)
    with pytest.raises(ValueError):
        CGN.config_model(damping=-1)


# ------------------------------------------------------------ exactness --------------
@pytest.mark.jittor
@pytest.mark.parametrize("section", [
    {},                                   # defaults: k=10, no sync
    {"k": 30, "tolerance": 1e-6},         # early stop (one sync per iteration)
    {"damping": 0.5},                     # exact for the damped system
], ids=["defaults", "tolerance", "damping"])
def test_exact_on_ridge(plugin_registry, section):
    from jboat_core.testing.problems import ridge_problem

    prob = ridge_problem(y0=ridge_problem().solution())  # start at y*(x)
    result = run_chain(prob, ["CGN"], plugin_registry, {"CGN": section})
    lam = section.get("damping", 0.0)
    y, H = prob.solution(), prob.hessian()
    v = np.linalg.solve(H @ H + lam * np.eye(len(y)), H @ prob.grad_F(y))
    expected = -(np.exp(prob.x()) * y) * v
    if lam == 0:
        np.testing.assert_allclose(expected, prob.exact(), rtol=1e-10)
    assert_matches(result["hyper_gradients"][0].numpy(), expected)


@pytest.mark.jittor
def test_exact_at_a_saddle_point(plugin_registry):
    """f(x, y) = y'My/2 - x'y with M indefinite: y*(x) = M^-1 x is a saddle point, CG's
    positive-definiteness assumption fails, CGNR still converges. F(y) = ||y - t||^2/2, so
    dF/dx = M^-1 (y* - t)."""
    from jboat_core.testing.problems import BilevelProblem, Vector, jt

    rng = np.random.RandomState(0)
    q, _ = np.linalg.qr(rng.randn(5, 5))
    M = q @ np.diag([-1.5, -0.6, 0.8, 1.2, 2.0]) @ q.T
    x, t = rng.randn(5), rng.randn(5)
    y_star = np.linalg.solve(M, x)

    def ll_objective(feed, ul_model, ll_model, **kw):
        w = ll_model(**kw)
        return 0.5 * (w * (feed["M"] * w).sum(1)).sum() - (ul_model() * w).sum()

    def ul_objective(feed, ul_model, ll_model, **kw):
        w = ll_model(**kw)
        return 0.5 * ((w - feed["t"]) ** 2).sum()

    f32 = lambda a: jt.array(a.astype(np.float32))  # noqa: E731
    prob = BilevelProblem(Vector(y_star), Vector(x), ll_objective, ul_objective,
                          {"M": f32(M)}, {"t": f32(t)})
    result = run_chain(prob, ["CGN"], plugin_registry)
    assert_matches(result["hyper_gradients"][0].numpy(), np.linalg.solve(M, y_star - t))


# ------------------------------------------------------------ composition ------------
@pytest.mark.jittor
def test_after_ptt_evaluates_at_the_pessimistic_iterate(plugin_registry):
    from jboat_core.testing.problems import ridge_problem

    K, lr = 3, 0.1
    result = check_returns_hypergradients(CGN, chain=["PTT", "CGN"], registry=plugin_registry,
                                          lower_iters=K, lr=lr)
    prob = ridge_problem()  # the problem check_returns_hypergradients ran on
    ys, _ = prob.trajectory(K, lr)
    k_star = 1 + int(np.argmax([prob.F(y) for y in ys[1:]]))
    assert k_star < K  # so the check below tells y_k* from y_K
    y = ys[k_star]
    expected = -(np.exp(prob.x()) * y) * np.linalg.solve(prob.hessian(), prob.grad_F(y))
    assert_matches(result["hyper_gradients"][0].numpy(), expected)

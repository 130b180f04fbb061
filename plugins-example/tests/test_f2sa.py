"""F2SA, a third-party first-order solver: conformance kit (through Problem, NaN
guard), registration, composition rules, and two outer iterations against the float64
formula on the ridge problem (relative error 1e-4)."""

import numpy as np
import pytest

from jboat_core import ConfigError, parse_solver_config
from jboat_core.contract import API_VERSION
from jboat_core.testing.conformance import conformance_tests
from jboat_example_plugin.f2sa import F2SA, JBOAT_API_VERSION

from _entrypoints import plugin_entry_points

TestConformanceF2SA = conformance_tests(F2SA, module="jboat_example_plugin.f2sa")


def test_registered_from_the_declared_entry_point(plugin_registry):
    (ep,) = [e for e in plugin_entry_points() if e.name == "f2sa"]
    assert ep.value == "jboat_example_plugin.f2sa" and JBOAT_API_VERSION == API_VERSION
    rec = plugin_registry.get("f2sa", kind="first_order")
    assert rec.cls is F2SA and rec.origin.distribution == "jboat-example-plugin"


def test_composes_like_a_builtin_first_order_solver(plugin_registry):
    cfg = parse_solver_config({"fo_op": ["F2SA"], "F2SA": {"lam0": 2.0}}, plugin_registry)
    assert cfg.fo_op == ["F2SA"] and cfg.operators["F2SA"].lam0 == 2.0
    with pytest.raises(ConfigError, match="rule first-order-alone"):
        parse_solver_config({"fo_op": "F2SA", "na_op": ["RAD"]}, plugin_registry)
    with pytest.raises(ConfigError, match=r"F2SA.lam: unknown key"):
        parse_solver_config({"fo_op": "F2SA", "F2SA": {"lam": 1}}, plugin_registry)


@pytest.mark.jittor
def test_two_iterations_follow_the_formula(plugin_registry):
    from jboat_core import Problem
    from jboat_core.testing.problems import jt, ridge_problem
    p = ridge_problem()
    D, eta, K = p.np_data, 0.1, 3
    A1, b1, A2, b2, n = D["A1"], D["b1"], D["A2"], D["b2"], D["n"]
    fy = lambda x, y: A1.T @ (A1 @ y - b1) / n + np.exp(x) * y  # noqa: E731
    fx = lambda x, y: 0.5 * np.exp(x) * y * y  # noqa: E731
    Fy = lambda x, y: A2.T @ (A2 @ y - b2) / n  # noqa: E731
    prob = Problem({"fo_op": "F2SA", "lower_iters": K, "return_grad": True,
                    "F2SA": {"lam0": 2.0, "lam_growth": 0.5, "z_lr": 0.1}},
                   ll_objective=p.ll_objective, ul_objective=p.ul_objective,
                   ll_model=p.ll_model, ul_model=p.ul_model, ll_opt=jt.optim.SGD(p.ll_var, eta),
                   ul_opt=jt.optim.SGD(p.ul_var, 0.1), registry=plugin_registry)
    x, y, z = p.x(), p.y0(), p.y0()
    for t in range(2):
        lam = 2.0 + 0.5 * t
        for _ in range(K):
            z = z - 0.1 * fy(x, z)
        g_ref = lam * (fx(x, y) - fx(x, z))
        y = y - eta * (Fy(x, y) + lam * fy(x, y))
        g = prob.run_iter(p.ll_feed, p.ul_feed, t)["hyper_gradients"][0].numpy()
        assert np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref) < 1e-4, (t, g, g_ref)
        assert np.linalg.norm(p.y0() - y) / np.linalg.norm(y) < 1e-4

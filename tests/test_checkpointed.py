"""Checkpointed reverse mode (``checkpoint_every``): the same hyper-gradient as the full
unroll, in memory O(K/s + s).

Tolerance: relative L2 error 1e-5 against the full unroll (float32; the recomputed
segments are the same computation, the adjoint accumulates in another order), and the full
unroll is itself checked against float64 references in ``test_operators_exact.py`` and
``test_real_networks.py``. Cases: RAD, PTT+RAD (k* from the forward pass), RGT+RAD,
IAD (MAML), DI+RAD, GDA+RAD; SGD, SGD with momentum, Adam; on the ridge problem and on the
Conv-BN network (whose BatchNorm statistics must come out of the inner loop exactly once).
"""

from __future__ import annotations

import numpy as np
import pytest

pytestmark = pytest.mark.jittor

K = 7


def _rel(a, b):
    a = np.concatenate([np.ravel(v) for v in a])
    b = np.concatenate([np.ravel(v) for v in b])
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def _ridge_eval(cfg, opt, every, gda=False, same_model=False):
    from jboat_core import Problem
    from jboat_core.testing.problems import jt, ridge_problem

    prob = ridge_problem(seed=2)
    ll_model = prob.ll_model
    ul_model = prob.ll_model if same_model else prob.ul_model
    make = {"sgd": lambda v: jt.optim.SGD(v, 0.1),
            "momentum": lambda v: jt.optim.SGD(v, 0.05, momentum=0.9),
            "adam": lambda v: jt.optim.Adam(v, 0.05)}[opt]

    def gda_loss(ll_feed, ul_feed, ul, ll, **kw):
        a = ll_feed["alpha"]
        return prob.ul_objective(ul_feed, ul, ll, **kw) * a + \
            prob.ll_objective(ll_feed, ul, ll, **kw) * (1 - a)

    problem = Problem({"lower_iters": K, "return_grad": True, "checkpoint_every": every,
                       **cfg},
                      ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
                      ll_model=ll_model, ul_model=ul_model,
                      ll_opt=make(prob.ll_var),
                      ul_opt=jt.optim.SGD(list(ul_model.parameters()), 0.1),
                      gda_loss=gda_loss if gda else None)
    result = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
    grads = [g.numpy() for g in result["hyper_gradients"]]
    init = result.get("ll_init_gradients")
    return grads, [g.numpy() for g in init] if init else None, problem


CASES = {
    "RAD": {"na_op": ["RAD"]},
    "PTT+RAD": {"na_op": ["PTT", "RAD"]},
    "RGT+RAD": {"na_op": ["RGT", "RAD"], "RGT": {"truncate_iter": 2}},
    "DI+RAD": {"gm_op": ["DI", "NGD"], "na_op": ["RAD"]},
    "GDA+RAD": {"gm_op": ["GDA", "NGD"], "na_op": ["RAD"]},
}


@pytest.mark.parametrize("opt", ["sgd", "momentum", "adam"])
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("every", [3, "sqrt"])
def test_equals_the_full_unroll_on_ridge(case, opt, every):
    cfg = CASES[case]
    full, full0, _ = _ridge_eval(cfg, opt, 0, gda=case == "GDA+RAD")
    ckpt, ckpt0, problem = _ridge_eval(cfg, opt, every, gda=case == "GDA+RAD")
    assert problem.plan.checkpoint_every == (3 if every == 3 else 3)  # ceil(sqrt(7)) = 3
    assert _rel(ckpt, full) < 1e-5, (case, opt, ckpt, full)
    if full0 is not None:
        assert ckpt0 is not None and _rel(ckpt0, full0) < 1e-5
    assert np.abs(np.concatenate([np.ravel(g) for g in full])).max() > 0


@pytest.mark.parametrize("opt", ["sgd", "adam"])
def test_maml_iad_equals_the_full_unroll(opt):
    full, _, _ = _ridge_eval({"na_op": ["IAD"]}, opt, 0, same_model=True)
    ckpt, _, _ = _ridge_eval({"na_op": ["IAD"]}, opt, 2, same_model=True)
    assert _rel(ckpt, full) < 1e-5


def test_keeps_checkpoints_not_the_trajectory():
    """Memory: the forward pass holds ceil(K/s) checkpoints and one iterate, not K+1."""
    from jboat_core.solver.engine import evaluate_chain

    _, _, problem = _ridge_eval({"na_op": ["RAD"]}, "sgd", 3)
    comp = problem.composition
    ev = evaluate_chain(comp.dynamics, comp.chain, comp.plan, problem.ll_model,
                        problem.ll_opt, *_feeds(), 0, variables=problem.ll_var)
    fm = ev.lower.fmodel
    assert fm.tape is not None and sorted(fm.tape.checkpoints) == [0, 3, 6]
    assert len(fm._history) == 1 and not fm.track


def _feeds():
    from jboat_core.testing.problems import ridge_problem
    prob = ridge_problem(seed=2)
    return prob.ll_feed, prob.ul_feed


def test_refused_where_the_dynamics_cannot_checkpoint():
    from jboat_core import ConfigError, parse_solver_config
    with pytest.raises(ConfigError, match="checkpoint_every: the dynamics DM"):
        parse_solver_config({"gm_op": ["DM"], "na_op": ["RAD"], "checkpoint_every": 2})
    with pytest.raises(ConfigError, match="checkpoint_every: .*segment length"):
        parse_solver_config({"na_op": ["RAD"], "checkpoint_every": -1})


@pytest.fixture
def rn(builtin_registry):
    import realnet
    realnet.jt.set_global_seed(0)
    return realnet


@pytest.mark.parametrize("chain", [["RAD"], ["PTT", "RAD"]], ids=["RAD", "PTT+RAD"])
def test_convbn_equals_the_full_unroll_and_batchnorm_runs_once(rn, chain):
    """Conv-BN network, hyper-cleaning weights: the checkpointed hyper-gradient equals the
    full unroll's, the BatchNorm statistics the solver adopts are the full unroll's (the
    recomputed segments update copies, never them), and the real module's statistics are
    untouched by evaluate."""
    from jboat_core import Problem
    from jboat_core.numerics.functional import walk
    from jboat_core.solver.engine import evaluate_chain

    out = {}
    for every in (0, 2):
        rn.jt.set_global_seed(0)
        train, val = rn.feeds()
        net = rn.NETS["convbn"]()
        w = rn.Weights(train["target"].shape[0])
        w.x.update(rn.jt.array(np.random.RandomState(1).randn(16).astype("float32") * 0.5))

        def f(feed, ul, ll, **kw):
            return (ul().sigmoid() * rn.ce_per_example(ll(feed["data"], **kw),
                                                       feed["target"])).mean()

        def F(feed, ul, ll, **kw):
            return rn.ce(ll(feed["data"], **kw), feed["target"])

        lower = [p for p in net.parameters() if not p.is_stop_grad()]
        real_before = [b.numpy().copy() for b in walk(net)[2]]
        problem = Problem({"na_op": chain, "lower_iters": 5, "return_grad": True,
                           "copy_last_param": False, "checkpoint_every": every},
                          ll_objective=f, ul_objective=F, ll_model=net, ul_model=w,
                          ll_var=lower, ul_var=[w.x], ll_opt=rn.jt.optim.SGD(lower, 0.1),
                          ul_opt=rn.jt.optim.SGD([w.x], 0.1))
        comp = problem.composition
        ev = evaluate_chain(comp.dynamics, comp.chain, comp.plan, net, problem.ll_opt,
                            train, val, 0, variables=problem.ll_var)
        out[every] = ([g.numpy() for g in ev.result.hyper_gradients],
                      [b.numpy() for b in ev.lower.buffers],
                      [b.numpy() for b in ev.lower.fmodel.buffers()])  # after the reverse pass
        assert all(np.array_equal(a, b.numpy()) for a, b in zip(real_before, walk(net)[2]))
    (g_full, bn_full, after_full), (g_ckpt, bn_ckpt, after_ckpt) = out[0], out[2]
    assert _rel(g_ckpt, g_full) < 1e-5
    # what the solver adopts, and the functional copies after the reverse pass (the
    # chain's own F evaluations update them as in the full unroll; recomputation does not)
    for ours, theirs in ((bn_ckpt, bn_full), (after_ckpt, after_full)):
        assert theirs and all(np.allclose(a, b, rtol=1e-6, atol=1e-7)
                              for a, b in zip(ours, theirs))


def test_run_checkpoints_resume_as_the_original(builtin_registry):
    """Checkpointed reverse mode composes with checkpoints of runs: two iterations, a
    problem restored from ``state_dict``, the third iteration as the original's (momentum
    carried in the lower optimizer's state)."""
    from jboat_core.testing import conformance
    from jboat_ops.rad import RAD

    def make():
        problem, prob, _ = conformance.conformance_problem(
            RAD, registry=builtin_registry, lower_iters=5, checkpoint_every=2)
        return problem, prob

    a, prob = make()
    assert a.plan.checkpoint_every == 2
    for it in range(2):
        a.run_iter(prob.ll_feed, prob.ul_feed, it)
    b, prob_b = make()
    b.load_state_dict(conformance._through_npz(a.state_dict()))
    ra = a.run_iter(prob.ll_feed, prob.ul_feed, 2)
    rb = b.run_iter(prob_b.ll_feed, prob_b.ul_feed, 2)
    assert ra["upper_loss"] == rb["upper_loss"]
    for x, y in zip(a.ul_var + a.ll_var, b.ul_var + b.ll_var):
        assert np.array_equal(x.numpy(), y.numpy())

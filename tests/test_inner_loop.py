"""The differentiable inner loop: functional call, trajectory snapshots, SGD/Adam steps."""

import numpy as np
import pytest

from helpers import rel_err, run_chain

pytestmark = pytest.mark.jittor

K, LR = 4, 0.1


@pytest.fixture
def ridge(builtin_registry):
    from jboat_core.testing.problems import ridge_problem
    return ridge_problem()


def test_snapshots_are_distinct_iterates(ridge):
    _, _, fm = run_chain(ridge, ["RAD"], K, LR)
    ys, _ = ridge.trajectory(K, LR)
    snaps = [fm.parameters(time=k)[0] for k in range(K + 1)]
    assert len({id(s) for s in snaps}) == K + 1  # upstream aliased them all
    for k, s in enumerate(snaps):
        assert np.allclose(s.numpy(), ys[k], atol=1e-5), k
    assert snaps[0] is ridge.ll_model.w  # time 0 is the real lower-level parameter


def test_gradient_wrt_time0_reaches_real_parameters(ridge):
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    _, _, fm = run_chain(ridge, ["RAD"], K, LR)
    F = ridge.ul_objective(ridge.ul_feed, ridge.ul_model, fm, params=fm.parameters())
    g = jt.grad(F, ridge.ll_model.w).numpy()
    assert rel_err(g, ridge.dF_dy0(K, LR)) < 1e-5


def test_untracked_loop_keeps_constant_memory(ridge):
    _, _, fm = run_chain(ridge, ["CG"], 6, LR)
    assert fm.track is False and len(fm._history) == 1 and fm.steps == 6
    ys, _ = ridge.trajectory(6, LR)
    assert np.allclose(fm.parameters()[0].numpy(), ys[6], atol=1e-5)
    from jboat_core.errors import OperatorRuntimeError
    with pytest.raises(OperatorRuntimeError, match="not tracked"):
        fm.parameters(time=3)


def test_flush_runs_every_n_steps_but_never_after_the_last(monkeypatch):
    """``numerics.flush`` syncs after steps every, 2 every, ... except the last one (the
    iteration's own sync runs that), and calls a callable ``values`` only then."""
    from jboat_core.numerics import autodiff
    jt, synced, built = autodiff.jt, [], []
    monkeypatch.setattr(jt, "sync", lambda values: synced.append(len(values)))

    def values():
        built.append(1)
        return [jt.array([1.0])]

    for k in range(12):
        autodiff.flush(k, 12, [jt.array([1.0])])  # FLUSH_EVERY = 16 > 12 steps
    assert synced == []
    monkeypatch.setattr(autodiff, "FLUSH_EVERY", 4)
    for k in range(12):
        autodiff.flush(k, 12, values)
    assert synced == [1, 1] and len(built) == 2  # after steps 4 and 8, not 12


@pytest.mark.parametrize("general", [False, True], ids=["plain-sgd", "momentum"])
def test_untracked_loop_is_executed_as_it_goes(ridge, monkeypatch, general):
    """An untracked inner loop is synced every ``FLUSH_EVERY`` steps: the graph left
    pending for the iteration's sync does not grow with K (Jittor is lazy; unflushed, K
    steps' graphs are held at once), and the iterates are unchanged."""
    from jboat_core.numerics import autodiff
    from jboat_core.platform._jittor import jittor
    from jboat_core.solver import engine
    jt = jittor()
    assert autodiff.FLUSH_EVERY == 16  # the period docs/guide/long-horizons.md states
    pending, sync = [], engine.sync_and_check

    def counting(*args, **kwargs):
        pending.append(jt.liveness_info()["lived_ops"])
        return sync(*args, **kwargs)

    monkeypatch.setattr(engine, "sync_and_check", counting)
    monkeypatch.setattr(autodiff, "FLUSH_EVERY", 4)
    opt = ((lambda v: jt.optim.SGD(v, LR, momentum=0.5)) if general else None)
    ends = {}
    for steps in (8, 32):
        _, _, fm = run_chain(ridge, ["CG"], steps, LR, optimizer=opt)
        ends[steps] = fm.parameters()[0].numpy()
    assert pending[1] <= pending[0] + 10, pending  # unflushed: about 4x
    if not general:
        ys, _ = ridge.trajectory(32, LR)
        assert np.allclose(ends[32], ys[32], atol=1e-5)
    monkeypatch.setattr(autodiff, "FLUSH_EVERY", 10 ** 9)
    _, _, fm = run_chain(ridge, ["CG"], 32, LR, optimizer=opt)
    assert pending[2] > 2 * pending[0], pending  # the check sees the difference
    assert np.allclose(fm.parameters()[0].numpy(), ends[32], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("chain", [["RAD"], ["PTT", "RAD"], ["RGT", "RAD"]])
def test_tracked_loop_executed_every_step_gives_the_same_hypergradient(ridge, monkeypatch,
                                                                       chain):
    """A differentiable inner loop is flushed too (one huge pending graph is slow to run):
    executed every step, its reverse pass gives the same hyper-gradient."""
    from helpers import check_flush_changes_nothing
    cfg = {"RGT": {"truncate_iter": 2}} if "RGT" in chain else None

    def run():
        _, g, fm = run_chain(ridge, chain, K, LR, cfg)
        return [g, fm.parameters()[0].numpy()]

    check_flush_changes_nothing(monkeypatch, run, K - 1)


@pytest.mark.parametrize("chain", [["RAD"], ["CG"], ["FOA", "IAD"], ["RGT", "RAD"]])
def test_plain_sgd_loop_equals_the_general_twin_step(ridge, monkeypatch, chain):
    """NGD's inlined loop for plain SGD (every step y - lr g) gives the iterates and the
    hyper-gradient of the general path (one ``DifferentiableOptimizer.step`` per inner
    step), tracked, untracked, first order and truncated alike."""
    from jboat_core.numerics.diffopt import DifferentiableOptimizer
    cfg = {"RGT": {"truncate_iter": 2}} if "RGT" in chain else None
    res, g_fast, fm = run_chain(ridge, chain, K, LR, cfg)
    y_fast = fm.parameters()[0].numpy()
    monkeypatch.setattr(DifferentiableOptimizer, "plain_lrs", lambda self: None)
    res, g_general, fm = run_chain(ridge, chain, K, LR, cfg)
    assert np.allclose(fm.parameters()[0].numpy(), y_fast, rtol=1e-6, atol=1e-7)
    assert np.allclose(g_general, g_fast, rtol=1e-5, atol=1e-8)


def test_functional_call_restores_and_handles_tied_parameters(builtin_registry):
    from jboat_core.numerics import FunctionalModel
    from jboat_core.platform._jittor import jittor
    jt = jittor()

    class Tied(jt.nn.Module):
        def __init__(self):
            self.a = jt.array([1.0, 2.0])
            self.inner = jt.nn.Sequential(jt.nn.Identity())
            self.inner.w = self.a  # the same Var in two places

        def execute(self):
            return (self.a * self.inner.w).sum()

    m = Tied()
    fm = FunctionalModel(m)
    assert len(fm.parameters()) == 1
    out = fm(params=[jt.array([3.0, 4.0])])
    assert out.item() == pytest.approx(25.0)
    assert m.a is m.inner.w and m.a.numpy().tolist() == [1.0, 2.0]


def test_functional_parameters_follow_module_parameters_order(builtin_registry):
    from jboat_core.numerics import FunctionalModel
    from jboat_core.platform._jittor import jittor
    from jboat_core.numerics.functional import trainable_parameters
    jt = jittor()

    class Net(jt.nn.Module):
        def __init__(self):
            self.body = jt.nn.Sequential(jt.nn.Linear(3, 4), jt.nn.BatchNorm1d(4),
                                         jt.nn.Linear(4, 2))
            self.extra = jt.nn.ParameterList([jt.array([1.0]), jt.array([2.0, 3.0])])
            self.scale = jt.array([0.5])
            self.tied = self.body.layers["0"].weight

        def execute(self, x):
            return self.body(x) * self.scale

    net = Net()
    got = FunctionalModel(net).parameters()
    want = trainable_parameters(net)
    assert len(got) == len(want) == 9 and all(a is b for a, b in zip(got, want))


def test_buffers_are_copied_not_written_back(builtin_registry):
    from jboat_core.numerics import FunctionalModel
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    net = jt.nn.Sequential(jt.nn.Linear(3, 4), jt.nn.BatchNorm1d(4))
    bn = net.layers["1"]
    before = bn.running_mean.numpy().copy()
    fm = FunctionalModel(net)
    assert len(fm.parameters()) == 4  # weight, bias, BN weight, BN bias: no buffers
    fm(jt.array(np.random.RandomState(0).randn(8, 3).astype(np.float32)))
    assert np.array_equal(bn.running_mean.numpy(), before)
    assert not np.array_equal(fm._buffers[0].numpy(), before)


def _numpy_reference(prob, step, K, eps=1e-6):
    """dF(y_K(x))/dx by central differences of a float64 NumPy unroll."""
    x0 = prob.x()

    def F_of(x):
        y, state = prob.y0(), {}
        for k in range(K):
            y = step(y, prob.grad_f(y, x), state, k + 1)
        return prob.F(y)

    g = np.zeros_like(x0)
    for i in range(len(x0)):
        e = np.zeros_like(x0)
        e[i] = eps
        g[i] = (F_of(x0 + e) - F_of(x0 - e)) / (2 * eps)
    return g


def test_sgd_momentum_weight_decay_unroll(ridge):
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    mom, wd = 0.9, 0.01

    def step(y, g, s, n):
        d = g + wd * y
        s["v"] = mom * s.get("v", 0) + d
        return y - LR * s["v"]

    opt = lambda p: jt.optim.SGD(p, LR, momentum=mom, weight_decay=wd)  # noqa: E731
    _, g, _ = run_chain(ridge, ["RAD"], K, LR, optimizer=opt)
    assert rel_err(g, _numpy_reference(ridge, step, K)) < 1e-4


def test_adam_unroll(ridge):
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    lr, b0, b1, eps = 0.05, 0.9, 0.999, 1e-8

    def step(y, g, s, n):
        s["m"] = b0 * s.get("m", 0) + (1 - b0) * g
        s["v"] = b1 * s.get("v", 0) + (1 - b1) * g * g
        return y - s["m"] * lr * np.sqrt(1 - b1 ** n) / (1 - b0 ** n) / (np.sqrt(s["v"]) + eps)

    opt = lambda p: jt.optim.Adam(p, lr)  # noqa: E731
    _, g, _ = run_chain(ridge, ["RAD"], K, lr, optimizer=opt)
    assert rel_err(g, _numpy_reference(ridge, step, K)) < 1e-3


@pytest.mark.parametrize("kind", ["SGD-momentum", "Adam"])
def test_warm_start_continues_the_lower_optimizer(builtin_registry, kind):
    """With copy_last_param, T outer iterations of K inner steps are T*K steps of the
    user's lower optimizer (momentum / Adam moments and step count carried over), when
    the upper variables do not move."""
    import numpy as np

    from jboat_core import Problem
    from jboat_core.platform._jittor import jittor
    from jboat_core.testing.problems import ridge_problem
    jt = jittor()
    make = (lambda ps: jt.optim.SGD(ps, 0.05, momentum=0.9, weight_decay=0.01)) \
        if kind == "SGD-momentum" else (lambda ps: jt.optim.Adam(ps, 0.05))
    p, q = ridge_problem(), ridge_problem()
    prob = Problem({"na_op": ["RAD"], "lower_iters": 3, "copy_last_param": True,
                    "return_grad": True}, ll_objective=p.ll_objective,
                   ul_objective=p.ul_objective, ll_model=p.ll_model, ul_model=p.ul_model,
                   ll_opt=make(p.ll_var), ul_opt=jt.optim.SGD(p.ul_var, 0.1))
    for it in range(4):
        prob.run_iter(p.ll_feed, p.ul_feed, it)
    opt = make(q.ll_var)
    for _ in range(12):
        opt.step(q.ll_objective(q.ll_feed, q.ul_model, q.ll_model))
    assert np.allclose(p.y0(), q.y0(), atol=1e-5), (p.y0(), q.y0())

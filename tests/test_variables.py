"""Variables are matched to the models by identity, never by position: buffers in
ll_var, subsets, another order, both levels in one module; refusals name the variable."""

import warnings

import numpy as np
import pytest

from jboat_core import ConfigError

pytestmark = pytest.mark.jittor


@pytest.fixture
def jt(builtin_registry):
    from jboat_core.testing.networks import jt
    jt.set_global_seed(0)
    return jt


def _net(jt):
    from jboat_core.testing.networks import ConvBNNet
    return ConvBNNet(channels=2, classes=10, size=8)




def _twin_layers(jt):
    """Two layers of identical shapes: a positional mix-up keeps every shape equal."""
    class Net(jt.nn.Module):
        def __init__(self):
            self.a = jt.nn.Linear(4, 4)
            self.b = jt.nn.Linear(4, 4)

        def execute(self, x):
            return self.b(jt.nn.relu(self.a(x)))
    return Net()


def _objectives(jt):
    rng = np.random.RandomState(0)
    X = jt.array(rng.randn(16, 4).astype("float32"))
    t = jt.array(rng.randn(16, 4).astype("float32"))

    class Decay(jt.nn.Module):
        def __init__(self):
            self.log_decay = jt.array([-2.0])

    hyper = Decay()

    def f(feed, ul, ll, **kw):
        y = kw.get("params") or [p for p in ll.module.parameters()]
        return ((ll(X, **kw) - t) ** 2).mean() + ul.log_decay.exp().sum() * sum(
            (v * v).sum() for v in y) * 0.5

    def F(feed, ul, ll, **kw):
        return ((ll(X, **kw) - t) ** 2).mean()
    return hyper, f, F


def _run(jt, order, gm=("NGD",), steps=2, copy_last_param=True):
    from jboat_core import Problem
    net = _twin_layers(jt)
    hyper, f, F = _objectives(jt)
    params = net.parameters()
    ll_var = order(params)
    prob = Problem({"gm_op": list(gm), "na_op": ["RAD"], "lower_iters": 3,
                    "copy_last_param": copy_last_param, "DI": {"lr": 0.05}},
                   ll_objective=f, ul_objective=F, ll_model=net, ul_model=hyper,
                   ll_opt=jt.optim.SGD(ll_var, 0.1), ul_opt=jt.optim.SGD([hyper.log_decay], 0.1),
                   ll_var=ll_var)
    for it in range(steps):
        prob.run_iter({}, {}, it)
    return {name: p.numpy().copy() for name, p in zip(("aw", "ab", "bw", "bb"), params)}, \
        hyper.log_decay.numpy().copy()


@pytest.mark.parametrize("gm", [("NGD",), ("DI", "NGD"), ("DM",)], ids=["warm-start", "DI", "DM"])
def test_another_order_gives_the_same_run(jt, gm):
    """ll_var in reverse order (every shape equal to its neighbour's: a positional pairing
    would swap the layers' values silently) gives exactly the module-order run."""
    ref, x_ref = _run(jt, list, gm)
    jt.set_global_seed(0)
    rev, x_rev = _run(jt, lambda ps: ps[::-1], gm)
    for k in ref:
        assert np.allclose(ref[k], rev[k], atol=1e-6), k
    assert np.allclose(x_ref, x_rev, atol=1e-6)


def test_buffers_in_ll_var_are_recognised(jt):
    """list(model.parameters()) includes BatchNorm's running statistics: they are dropped
    from the variables (JBOAT wrote the classifier weight into a running mean here)."""
    from jboat_core import Problem
    from jboat_core.testing.networks import digits
    net = _net(jt)
    train, val, _ = digits(16, 16)
    hyper, _, _ = _objectives(jt)

    def f(feed, ul, ll, **kw):
        y = kw.get("params") or []
        return jt.nn.cross_entropy_loss(ll(feed["data"], **kw), feed["target"]) + \
            ul.log_decay.exp().sum() * sum((v * v).sum() for v in y)

    def F(feed, ul, ll, **kw):
        return jt.nn.cross_entropy_loss(ll(feed["data"], **kw), feed["target"])

    every = list(net.parameters())
    assert any(p.is_stop_grad() for p in every)
    shapes = {id(p): list(p.shape) for p in every}
    prob = Problem({"na_op": ["RAD"], "lower_iters": 2, "copy_last_param": True},
                   ll_objective=f, ul_objective=F, ll_model=net, ul_model=hyper,
                   ll_var=every, ul_var=list(hyper.parameters()),
                   ll_opt=jt.optim.SGD(every, 0.1), ul_opt=jt.optim.SGD([hyper.log_decay], 0.1))
    assert [id(v) for v in prob.ll_var] == [id(p) for p in (
        net.conv.weight, net.bn.weight, net.bn.bias, net.head.weight, net.head.bias)]
    for it in range(2):
        prob.run_iter(train, val, it)
    assert all(list(p.shape) == shapes[id(p)] for p in every)


def test_both_levels_in_one_module(jt):
    """DARTS: the architecture logits are a parameter of the supernet; with ul_var given,
    the default lower variables are every other weight."""
    from jboat_core import Problem
    from jboat_core.testing.networks import SuperNet
    net = SuperNet(channels=2, nodes=2)
    ce = lambda feed, ul, ll, **kw: (ll(feed["x"], **kw) ** 2).mean()  # noqa: E731
    prob = Problem({"na_op": ["RAD"], "lower_iters": 1},
                   ll_objective=ce, ul_objective=ce, ll_model=net, ul_model=net,
                   ul_var=[net.alphas], ll_opt=jt.optim.SGD(net.weights(), 0.1),
                   ul_opt=jt.optim.Adam([net.alphas], 0.1))
    assert {id(v) for v in prob.ll_var} == {id(v) for v in net.weights()}
    with pytest.raises(ConfigError, match=r"ul_var\[0\] \(shape \[3, 4\].*is also in ll_var"):
        Problem({"na_op": ["RAD"]}, ll_objective=ce, ul_objective=ce, ll_model=net,
                ul_model=net, ul_var=[net.alphas], ll_var=list(net.parameters()),
                ll_opt=jt.optim.SGD(net.parameters(), 0.1),
                ul_opt=jt.optim.Adam([net.alphas], 0.1))


def test_refusals_name_the_variable(jt):
    from jboat_core import Problem
    net = _twin_layers(jt)
    hyper, f, F = _objectives(jt)
    stray = jt.zeros((7, 3))
    kw = dict(ll_objective=f, ul_objective=F, ll_model=net, ul_model=hyper,
              ul_opt=jt.optim.SGD([hyper.log_decay], 0.1))
    with pytest.raises(ConfigError, match=r"ll_var\[4\] \(shape \[7, 3\].*not a parameter of "
                                          r"the lower model Net"):
        Problem({"na_op": ["RAD"]}, ll_var=net.parameters() + [stray],
                ll_opt=jt.optim.SGD(net.parameters() + [stray], 0.1), **kw)
    with pytest.raises(ConfigError, match=r"ll_var\[0\] .*not optimized by the lower optimizer"):
        Problem({"na_op": ["RAD"]}, ll_var=net.parameters(),
                ll_opt=jt.optim.SGD(net.parameters()[1:], 0.1), **kw)
    with pytest.raises(ConfigError, match=r"ll_var\[1\]: expected a jittor.Var, got str"):
        Problem({"na_op": ["RAD"]}, ll_var=[net.a.weight, "bias"],
                ll_opt=jt.optim.SGD(net.parameters(), 0.1), **kw)


def test_same_variables_at_both_levels_need_a_meta_learning_operator(jt):
    from jboat_core import Problem
    net = _twin_layers(jt)
    _, f, F = _objectives(jt)
    kw = dict(ll_objective=F, ul_objective=F, ll_model=net, ul_model=net,
              ll_opt=jt.optim.SGD(net.parameters(), 0.1),
              ul_opt=jt.optim.SGD(net.parameters(), 0.1))
    with pytest.raises(ConfigError, match="same 4 variables. That is meta-learning.*IAD"):
        Problem({"na_op": ["RAD"]}, **kw)
    assert Problem({"na_op": ["IAD"]}, **kw).ll_var  # MAML accepts them


def test_initialisation_operators_need_mirrored_upper_variables(jt):
    """IAD hands dF/dy_0 to ul_var: upper variables of their own (a hyper-parameter) are
    refused when the Problem is built, naming the rule, not after an iteration."""
    from jboat_core import Problem
    net = _twin_layers(jt)
    hyper, f, F = _objectives(jt)
    kw = dict(ll_objective=f, ul_objective=F, ll_model=net, ul_model=hyper,
              ll_opt=jt.optim.SGD(net.parameters(), 0.1),
              ul_opt=jt.optim.SGD([hyper.log_decay], 0.1))
    for na in (["IAD"], ["FOA", "IAD"], ["IAD", "CG"]):
        with pytest.raises(ConfigError, match=r"IAD \(jboat\) needs ul_var to mirror ll_var "
                                              r"\(here ll_var has 4 variables and ul_var 1\).*"
                                              r"initial point y_0.*RAD or CG"):
            Problem({"na_op": na}, **kw)
    assert Problem({"na_op": ["RAD"]}, **kw).ul_var  # the same problem, a fitting chain


def test_modules_in_plain_lists_are_reported(jt):
    from jboat_core import InvisibleModuleWarning, Problem

    class Hidden(jt.nn.Module):
        def __init__(self):
            self.visible = jt.nn.Linear(4, 4)
            self.blocks = [jt.nn.Linear(4, 4), jt.nn.Linear(4, 4)]

        def execute(self, x):
            for b in self.blocks:
                x = b(x)
            return self.visible(x)

    net = Hidden()
    hyper, f, F = _objectives(jt)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Problem({"na_op": ["RAD"]}, ll_objective=F, ul_objective=F, ll_model=net,
                ul_model=hyper, ll_opt=jt.optim.SGD(net.parameters(), 0.1),
                ul_opt=jt.optim.SGD([hyper.log_decay], 0.1))
    msgs = [str(w.message) for w in caught if issubclass(w.category, InvisibleModuleWarning)]
    assert len(msgs) == 1 and "Hidden.blocks holds 2 jittor Module(s) in a plain list" in msgs[0]


def test_objectives_see_the_user_module(jt):
    """Private attributes, sub-modules and methods of the lower model, through the
    functional view: sub-modules and methods run with the substituted weights."""
    from jboat_core.numerics import FunctionalModel

    class Net(jt.nn.Module):
        def __init__(self):
            self.head = jt.nn.Linear(3, 2)
            self._criterion = jt.nn.MSELoss()
            self._scale = 2.0

        def execute(self, x):
            return self.head(x) * self._scale

        def _loss(self, x, t):
            return self._criterion(self.execute(x), t)

    net = Net()
    fm = FunctionalModel(net)
    x, t = jt.ones((4, 3)), jt.zeros((4, 2))
    w = [v * 0 for v in fm.parameters()]
    fm.update_params(w)
    assert fm._scale == 2.0
    assert float(fm._loss(x, t).item()) == 0.0  # the method saw the zero snapshot
    assert float(fm._criterion(fm(x), t).item()) == 0.0
    assert np.all(fm.head(x).numpy() == 0) and fm.head.weight is w[0]
    assert float(net._loss(x, t).item()) > 0  # the real module kept its weights

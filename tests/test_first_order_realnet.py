"""First-order solvers on a real network: one outer iteration on the Conv-BN net (lower:
its weights; upper: per-example weights of the training loss, F with 0.05 |x|^2) equals
the solver's formula, the same NumPy formula as ``jboat_core.testing.firstorder_reference`` evaluated with float64
partial derivatives of the float64 twin (plain ``jt.grad``, no jboat code). GAFFO runs
on two copies of the network (its levels must have equal shapes).

Tolerance 1e-3 relative (float32 against float64 through a few convolutions; measured
1e-6 to 1e-4): the upper gradient, and the lower step y_new - y.
"""

import numpy as np
import pytest

from jboat_core.testing import firstorder_reference as ref

pytestmark = pytest.mark.jittor

TOL, RHO, ETA = 1e-3, 0.05, 0.1


class TwinOracle:
    """f, F and their partial derivatives as functions of flat float64 vectors (x, y),
    computed on the float64 twin of the network."""

    def __init__(self, rn, f, F, net64, ul64, lower64, upper64, ll_feed, ul_feed):
        self.rn, self.jt = rn, rn.jt
        self.f_, self.F_ = f, F
        self.net, self.ul, self.lower, self.upper = net64, ul64, lower64, upper64
        self.ll, self.ulf = rn.to64(ll_feed), rn.to64(ul_feed)

    def _set(self, x, y):
        for vars_, flat in ((self.upper, x), (self.lower, y)):
            k, parts = 0, []
            for v in vars_:
                n = int(np.prod(v.shape))
                parts.append(flat[k:k + n].reshape(v.shape))
                k += n
            self.rn.set_values(vars_, parts)

    def _value(self, which, x, y):
        self._set(x, y)
        return (self.f_(self.ll, self.ul, self.net) if which == "f"
                else self.F_(self.ulf, self.ul, self.net))

    def _grad(self, which, x, y, wrt):
        g = self.jt.grad(self._value(which, x, y), wrt)
        return np.concatenate([gi.numpy().ravel() for gi in g])

    def f(self, x, y):
        return float(self._value("f", x, y).item())

    def F(self, x, y):
        return float(self._value("F", x, y).item())

    def fy(self, x, y):
        return self._grad("f", x, y, self.lower)

    def fx(self, x, y):
        return self._grad("f", x, y, self.upper)

    def Fy(self, x, y):
        return self._grad("F", x, y, self.lower)

    def Fx(self, x, y):
        return self._grad("F", x, y, self.upper)

    def penalty_grads(self, x, y):
        g = self.jt.grad(self._value("f", x, y), self.lower)
        p = sum((gi * gi).sum() for gi in g)
        d = self.jt.grad(p, self.lower + self.upper)
        n = len(self.lower)
        return (np.concatenate([a.numpy().ravel() for a in d[:n]]),
                np.concatenate([a.numpy().ravel() for a in d[n:]]))


def _flat(vs):
    return np.concatenate([v.numpy().astype(np.float64).ravel() for v in vs])


CASES = {
    "VSO": ({"z_loop": 2, "z_lr": 0.05, "ul_ln_reg": 1.0},
            lambda P, x, y: ref.vso(P, x, y, 0, ETA, 2, z_loop=2, z_lr=0.05, ul_ln_reg=1.0)),
    "VFO": ({"u1": 10.0}, lambda P, x, y: ref.vfo(P, x, y, 0, ETA, 2, u1=10.0)),
    "MESO": ({"eta": 0.05, "gamma_1": 0.5},
             lambda P, x, y: ref.meso(P, x, y, 0, ETA, 2, y, eta_th=0.05, gamma_1=0.5)),
    "PGDO": ({"gamma_init": 0.5}, lambda P, x, y: ref.pgdo(P, x, y, 0, ETA, 2, y, gamma_init=0.5)),
    "PGDO-gradient": ({"gamma_init": 0.5, "penalty": "gradient"},
                      lambda P, x, y: ref.pgdo(P, x, y, 0, ETA, 2, y, gamma_init=0.5,
                                               penalty="gradient")),
    "ALTO": ({}, lambda P, x, y: ref.alto(P, x, y, 0, ETA, 2)),
}


@pytest.fixture
def rn(builtin_registry):
    import realnet
    realnet.jt.set_global_seed(0)
    return realnet


def _run(rn, name, section, net, ul, lower, upper, f, F, train, val):
    from jboat_core import Problem
    op = name.split("-")[0]
    prob = Problem({"fo_op": op, "lower_iters": 2, "return_grad": True, op: section},
                   ll_objective=f, ul_objective=F, ll_model=net, ul_model=ul,
                   ll_var=lower, ul_var=upper, ll_opt=rn.jt.optim.SGD(lower, ETA),
                   ul_opt=rn.jt.optim.SGD(upper, 0.1))
    y0 = _flat(lower)
    g = _flat(prob.run_iter(train, val, 0)["hyper_gradients"])
    return g, _flat(lower) - y0


def _check(g, step, g_ref, step_ref, name):
    rel_g = np.linalg.norm(g - g_ref) / np.linalg.norm(g_ref)
    rel_s = np.linalg.norm(step - step_ref) / np.linalg.norm(step_ref)
    assert rel_g < TOL and rel_s < TOL, (name, rel_g, rel_s)


@pytest.mark.parametrize("name", list(CASES))
def test_one_iteration_on_the_convbn_net(rn, name):
    train, val = rn.feeds()
    net = rn.NETS["convbn"]()
    w = rn.Weights(16)
    w.x.update(rn.jt.array(np.random.RandomState(1).randn(16).astype("float32") * 0.5))

    def f(feed, ul, ll, **kw):
        return (ul().sigmoid() * rn.ce_per_example(ll(feed["data"], **kw), feed["target"])).mean()

    def F(feed, ul, ll, **kw):
        return rn.ce(ll(feed["data"], **kw), feed["target"]) + (ul() * ul()).sum() * (RHO / 2)

    lower = [p for p in net.parameters() if not p.is_stop_grad()]
    net64, w64 = rn.twin64(net, rn.NETS["convbn"]), rn.twin64(w, lambda: rn.Weights(16))
    lower64 = [p for p in net64.parameters() if not p.is_stop_grad()]
    P = TwinOracle(rn, f, F, net64, w64, lower64, [w64.x], train, val)
    x, y = _flat([w.x]), _flat(lower)
    g_ref, y_ref, _ = CASES[name][1](P, x, y)
    g, step = _run(rn, name, CASES[name][0], net, w, lower, [w.x], f, F, train, val)
    _check(g, step, g_ref, y_ref - y, name)


def test_gaffo_on_two_copies_of_the_network(rn):
    train, val = rn.feeds()
    fast, slow = rn.NETS["convbn"](), rn.NETS["convbn"]()  # y: adapted, x: initialisation
    ce = lambda feed, ul, ll, **kw: rn.ce(ll(feed["data"], **kw), feed["target"])  # noqa: E731
    lower = [p for p in fast.parameters() if not p.is_stop_grad()]
    upper = [p for p in slow.parameters() if not p.is_stop_grad()]
    f64, s64 = rn.twin64(fast, rn.NETS["convbn"]), rn.twin64(slow, rn.NETS["convbn"])
    lower64 = [p for p in f64.parameters() if not p.is_stop_grad()]
    upper64 = [p for p in s64.parameters() if not p.is_stop_grad()]
    P = TwinOracle(rn, ce, ce, f64, s64, lower64, upper64, train, val)
    x, y = _flat(upper), _flat(lower)
    g_ref, y_ref, _ = ref.gaffo(P, x, y, 0, ETA, 1, lam=0.5, maximize=False)
    from jboat_core import Problem
    prob = Problem({"fo_op": "GAFFO", "return_grad": True,
                    "GAFFO": {"lambda": 0.5, "maximize": False}},
                   ll_objective=ce, ul_objective=ce, ll_model=fast, ul_model=slow,
                   ll_var=lower, ul_var=upper, ll_opt=rn.jt.optim.SGD(lower, ETA),
                   ul_opt=rn.jt.optim.SGD(upper, 0.1))
    g = _flat(prob.run_iter(train, val, 0)["hyper_gradients"])
    _check(g, _flat(lower) - y, g_ref, y_ref - y, "GAFFO")

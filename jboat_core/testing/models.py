"""The lower models and bilevel problems of the composition matrix
(``jboat_core.testing.matrix``): a linear model, a tanh MLP with several parameter tensors
and a Conv-BatchNorm network, in float32 or float64, on two problems:

* **weighting** (hyper-cleaning's shape): one log-weight per training example is the
  upper variable,

  .. math:: f(x, y) = \\frac1n \\sum_i e^{x_i} (m_y(a_i) - t_i)^2 + \\delta \\|y\\|^2,
            \\qquad F(y) = \\frac1m \\sum_j (m_y(c_j) - s_j)^2;

* **meta** (MAML's shape): the upper variables are the lower model's own initial values
  theta = y_0, f the training error (plus iMAML's proximal term
  :math:`\\frac\\lambda2\\|y - \\theta\\|^2` when asked), F the validation error.

Every objective is written dtype-exact (``jboat_core.constant`` for numbers float32 does
not hold), so a float64 run is float64 throughout. Importing this module imports Jittor.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..numerics.autodiff import constant
from ..platform._jittor import jittor
from .cases import MODELS

jt = jittor()
nn = jt.nn

#: Training and validation examples (n is also the number of upper scalars: weighting).
N_TRAIN, N_VAL = 6, 5
#: L2 weight delta of the weighting problem's f, and the proximal lambda of ``meta``.
DECAY, PROXIMAL = 0.5, 10.0


class LinearModel(nn.Module):
    """m_y(a) = a w + b."""

    def __init__(self, d: int = 3):
        self.w = jt.zeros((d, 1))
        self.b = jt.zeros((1,))

    def execute(self, a):
        """m_y(a) for inputs a (n, d)."""
        return jt.matmul(a, self.w) + self.b


class TanhMLP(nn.Module):
    """m_y(a) = W2 tanh(W1 a + b1) + b2 (3-5-1), four parameter tensors."""

    def __init__(self, d: int = 3, hidden: int = 5):
        self.l1 = nn.Linear(d, hidden)
        self.l2 = nn.Linear(hidden, 1)

    def execute(self, a):
        """m_y(a) for inputs a (n, d)."""
        return self.l2(jt.tanh(self.l1(a)))


class ConvBN(nn.Module):
    """conv 3x3 (1 -> 2 channels) -> BatchNorm (batch statistics; running statistics as
    buffers) -> tanh -> linear, on 1x5x5 images."""

    def __init__(self):
        self.conv = nn.Conv(1, 2, 3)
        self.bn = nn.BatchNorm(2, eps=1.0)  # no collapse of the conv weights under decay
        self.head = nn.Linear(18, 1)

    def execute(self, a):
        """m_y(a) for images a (n, 1, 5, 5)."""
        h = jt.tanh(self.bn(self.conv(a)))
        return self.head(h.reshape((h.shape[0], -1)))


class LogWeights(nn.Module):
    """The upper variables of the weighting problem: one log-weight per example."""

    def __init__(self, n: int):
        self.x = jt.zeros((n,))

    def execute(self):
        """x, the log-weights."""
        return self.x


def trainable(module) -> list:
    """``module.parameters()`` without its buffers (stop-grad Vars: BatchNorm statistics)."""
    return [p for p in module.parameters() if not p.is_stop_grad()]


def _inputs(model: str, rng, n: int) -> np.ndarray:
    return rng.randn(n, 1, 5, 5) if model == "convbn" else rng.randn(n, 3)


def new_model(model: str):
    """A fresh (float32, default-initialised) lower model named ``model``."""
    return {"linear": LinearModel, "mlp": TanhMLP, "convbn": ConvBN}[model]()


@dataclass
class MatrixProblem:
    """One problem of the matrix, as NumPy data and initial values: ``build(dtype)``
    makes the Vars, models and objectives (a new, independent set each call).

    Attributes
    ----------
    model : str
        One of ``MODELS``.
    kind : str
        ``"weighting"`` or ``"meta"``.
    data : dict
        ``a``, ``t`` (training), ``c``, ``s`` (validation) as float64 arrays.
    init : list of numpy.ndarray
        Initial values of the lower model's trainable parameters (``trainable`` order).
    x0 : numpy.ndarray or None
        Initial log-weights (weighting).
    proximal : float
        iMAML's lambda in f (meta; 0: none).
    """

    model: str
    kind: str
    data: dict
    init: list
    x0: np.ndarray | None = None
    proximal: float = 0.0
    converged: bool = False
    gda: tuple = (0.5, 0.9)
    built: list = field(default_factory=list, repr=False)

    def build(self, dtype: str) -> "Built":
        """Models with the initial values, feeds and objectives, every Var of ``dtype``."""
        var = lambda a: jt.array(np.asarray(a, np.float64), dtype)  # noqa: E731
        ll = new_model(self.model)
        for p, value in zip(trainable(ll), self.init):
            p.update(var(value))
        for b in ll.parameters():
            if b.is_stop_grad():  # BatchNorm statistics: dtype-consistent buffers
                b.update(var(b.numpy()).stop_grad())
        d = self.data
        ll_feed = {"a": var(d["a"]), "t": var(d["t"])}
        ul_feed = {"a": var(d["c"]), "t": var(d["s"])}
        if self.kind == "meta":
            ul, theta = ll, trainable(ll)
        else:
            ul = LogWeights(N_TRAIN)
            ul.x.update(var(self.x0))
            theta = None
        f, F, gda = objectives(self.kind, theta, self.proximal)
        return Built(ll, ul, f, F, gda, ll_feed, ul_feed, trainable(ll), trainable(ul)
                     if ul is not ll else trainable(ll))


@dataclass
class Built:
    """What ``Problem`` needs: models, objectives (f, F, GDA's phi) and feeds."""

    ll_model: object
    ul_model: object
    ll_objective: object
    ul_objective: object
    gda_loss: object
    ll_feed: dict
    ul_feed: dict
    ll_var: list
    ul_var: list


def _squared_error(model, feed, kw):
    out = model(feed["a"], **kw)
    r = (out - feed["t"]).reshape((-1,))
    return r * r


def objectives(kind: str, theta=None, proximal: float = 0.0):
    """``(f, F, phi)`` in jboat's signature ``(feed, ul_model, ll_model, **kw)`` (phi:
    ``(ll_feed, ul_feed, ul_model, ll_model, **kw)``, alpha F + (1 - alpha) f with alpha
    from the lower feed, as GDA passes it)."""

    def F(feed, ul, ll, **kw):
        """The validation error."""
        return _squared_error(ll, feed, kw).sum() / N_VAL

    if kind == "meta":
        def f(feed, ul, ll, **kw):
            """The training error (and the proximal term)."""
            loss = _squared_error(ll, feed, kw).sum() / N_TRAIN
            if proximal:
                ys = kw.get("params") or trainable(ll)
                sq = [((a - b) * (a - b)).sum() for a, b in zip(ys, theta)]
                loss = loss + sum(sq[1:], sq[0]) * constant(proximal / 2, loss)
            return loss
    else:
        def f(feed, ul, ll, **kw):
            """The weighted training error and the L2 term."""
            loss = (ul().exp() * _squared_error(ll, feed, kw)).sum() / N_TRAIN
            ys = kw.get("params") or trainable(ll)
            sq = [(p * p).sum() for p in ys]
            return loss + sum(sq[1:], sq[0]) * constant(DECAY, loss)

    def phi(ll_feed, ul_feed, ul, ll, **kw):
        """GDA's alpha F + (1 - alpha) f."""
        a = ll_feed["alpha"]
        upper, lower = F(ul_feed, ul, ll, **kw), f(ll_feed, ul, ll, **kw)
        return upper * constant(a, upper) + lower * constant(1 - a, lower)

    return f, F, phi


def matrix_problem(model: str, kind: str = "weighting", seed: int = 0,
                   proximal: float = 0.0) -> MatrixProblem:
    """The problem of ``model`` and ``kind`` from ``seed`` (same seed, same problem)."""
    if model not in MODELS:
        raise ValueError(f"model {model!r}: one of {', '.join(MODELS)}")
    rng = np.random.RandomState(seed)
    data = {"a": _inputs(model, rng, N_TRAIN), "t": rng.randn(N_TRAIN, 1),
            "c": _inputs(model, rng, N_VAL), "s": rng.randn(N_VAL, 1)}
    init = [rng.randn(*p.shape) * 0.5 for p in trainable(new_model(model))]
    x0 = 0.3 * rng.randn(N_TRAIN) if kind == "weighting" else None
    return MatrixProblem(model, kind, data, init, x0, proximal)

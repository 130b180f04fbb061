"""Small real networks for tests, benchmarks and examples: a convolutional net with
BatchNorm and a DARTS-style supernet whose architecture weights live in the same module.

Both take 1-channel square images (scikit-learn's 8x8 digits). Importing this module
imports Jittor.
"""

from __future__ import annotations

import numpy as np

from ..platform._jittor import jittor

jt = jittor()
nn = jt.nn


class ConvBNNet(nn.Module):
    """Conv -> BatchNorm -> ReLU -> average pool -> Linear.

    Parameters
    ----------
    channels : int
        Convolution channels.
    classes : int
    size : int
        Side of the square input images.
    """

    def __init__(self, channels: int = 4, classes: int = 10, size: int = 8):
        self.conv = nn.Conv(1, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm(channels)
        self.pool = nn.Pool(2, stride=2, op="mean")
        self.head = nn.Linear(channels * (size // 2) ** 2, classes)

    def features(self, x):
        """Conv -> BatchNorm -> ReLU -> mean pool, flattened: (batch, channels * (size/2)^2)."""
        h = self.pool(nn.relu(self.bn(self.conv(x))))
        return h.reshape((h.shape[0], -1))

    def execute(self, x):
        """Class scores (batch, classes) of images x (batch, 1, size, size)."""
        return self.head(self.features(x))


#: Candidate operations of the supernet's edges, in order.
PRIMITIVES = ("none", "skip_connect", "avg_pool_3x3", "conv_3x3")


class _Zero(nn.Module):
    def execute(self, x):
        """The "none" candidate: zeros of x's shape."""
        return x * 0.0


class _Identity(nn.Module):
    def execute(self, x):
        """The "skip_connect" candidate: x."""
        return x


class _ReLUConvBN(nn.Module):
    def __init__(self, channels: int):
        self.conv = nn.Conv(channels, channels, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm(channels, affine=False)

    def execute(self, x):
        """ReLU -> conv 3x3 -> BatchNorm (no affine), DARTS' convolution candidate."""
        return self.bn(self.conv(nn.relu(x)))


def _candidate(name: str, channels: int):
    if name == "none":
        return _Zero()
    if name == "skip_connect":
        return _Identity()
    if name == "avg_pool_3x3":
        return nn.Pool(3, stride=1, padding=1, op="mean")
    if name == "conv_3x3":
        return _ReLUConvBN(channels)
    raise ValueError(f"unknown primitive {name!r}; choose among {PRIMITIVES}")


class MixedOp(nn.Module):
    """An edge: the softmax(alpha)-weighted sum of every candidate operation. Sub-modules
    are plain attributes (``op0``, ``op1``...), which every functional patcher sees (JBOAT's
    cannot run ``nn.Sequential``)."""

    def __init__(self, channels: int, primitives=PRIMITIVES):
        self.n_ops = len(primitives)
        for i, p in enumerate(primitives):
            setattr(self, f"op{i}", _candidate(p, channels))

    def execute(self, x, weights):
        """sum_i weights[i] * op_i(x): the edge's mixture of candidates."""
        out = None
        for i in range(self.n_ops):
            term = getattr(self, f"op{i}")(x) * weights[i]
            out = term if out is None else out + term
        return out


class Cell(nn.Module):
    """``nodes`` intermediate nodes; node j sums a mixed edge from the input and from
    every earlier node; the cell's output is the sum of its nodes."""

    def __init__(self, channels: int, nodes: int, primitives=PRIMITIVES):
        self.nodes = nodes
        for k in range(nodes * (nodes + 1) // 2):
            setattr(self, f"edge{k}", MixedOp(channels, primitives))

    def execute(self, x, weights):
        """The cell's nodes, each the sum of mixed edges from every earlier state;
        returns the sum of the intermediate nodes. ``weights``: one row per edge."""
        states, k = [x], 0
        for j in range(self.nodes):
            s = None
            for i, h in enumerate(states):
                term = getattr(self, f"edge{k}")(h, weights[k])
                s = term if s is None else s + term
                k += 1
            states.append(s)
        out = states[1]
        for s in states[2:]:
            out = out + s
        return out


class SuperNet(nn.Module):
    """A DARTS-style supernet: stem Conv-BN, one cell of mixed edges, global average
    pooling and a linear
    classifier; the architecture logits ``alphas`` (edges x primitives) are a Var of the
    module itself, so ``parameters()`` holds both levels (pass ``ul_var=[net.alphas]``).

    Parameters
    ----------
    channels, nodes, classes, size : int
    seed : int
        Seed of the architecture logits (1e-3 * standard normal, as DARTS).
    """

    def __init__(self, channels: int = 4, nodes: int = 2, classes: int = 10, size: int = 8,
                 primitives=PRIMITIVES, seed: int = 0):
        self.primitives = tuple(primitives)
        self.stem_conv = nn.Conv(1, channels, 3, padding=1, bias=False)
        self.stem_bn = nn.BatchNorm(channels)
        self.cell = Cell(channels, nodes, self.primitives)
        self.head = nn.Linear(channels, classes)
        edges = nodes * (nodes + 1) // 2
        rng = np.random.RandomState(seed)
        self.alphas = jt.array((1e-3 * rng.randn(edges, len(self.primitives))).astype("float32"))

    def features(self, x):
        """Stem, one cell under softmax(alphas), global average pooling: (batch, channels)."""
        h = self.cell(self.stem_bn(self.stem_conv(x)), nn.softmax(self.alphas, dim=-1))
        return h.mean(dims=(2, 3))  # global average pooling

    def execute(self, x):
        """Class scores (batch, classes)."""
        return self.head(self.features(x))

    def weights(self) -> list:
        """Every trainable parameter but the architecture logits (the lower variables)."""
        return [p for p in self.parameters() if p is not self.alphas and not p.is_stop_grad()]

    def genotype(self) -> list[tuple[int, int, str]]:
        """The derived cell: for each node, its strongest non-zero incoming edge
        ``(node, input, primitive)``, as DARTS derives a discrete architecture."""
        a = self.alphas.numpy()
        weights = np.exp(a - a.max(1, keepdims=True))
        weights /= weights.sum(1, keepdims=True)
        none = self.primitives.index("none") if "none" in self.primitives else None
        out, k = [], 0
        for j in range(self.cell.nodes):
            best = None
            for i in range(j + 1):
                w = weights[k].copy()
                if none is not None:
                    w[none] = -1
                cand = (float(w.max()), i, self.primitives[int(w.argmax())])
                best = cand if best is None or cand[0] > best[0] else best
                k += 1
            out.append((j + 1, best[1], best[2]))
        return out


def digits(n_train: int = 64, n_val: int = 64, seed: int = 0, size: int = 8):
    """scikit-learn's digits (no download) as ``(train, val, test)`` feeds
    ``{"data": (n, 1, 8, 8) float32 in [0, 1], "target": int labels}``."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    rng = np.random.RandomState(seed)
    order = rng.permutation(len(y))
    X = (X[order] / 16.0).astype(np.float32).reshape(-1, 1, size, size)
    y = y[order].astype(np.int32)
    a, b = n_train, n_train + n_val
    feed = lambda s: {"data": jt.array(X[s]), "target": jt.array(y[s])}  # noqa: E731
    return feed(slice(0, a)), feed(slice(a, b)), feed(slice(b, None))

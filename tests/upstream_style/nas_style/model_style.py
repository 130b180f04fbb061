"""A tiny DARTS search network in the style of JBOAT's NAS example (jboat's own code, for
the test suite): cells and candidate operations kept in plain Python lists (invisible to
``Module.parameters()``, as upstream's), architecture logits in a dict
(``hidden_params``, also invisible), a private ``_criterion``."""

import jittor as jit
from jittor import nn

PRIMITIVES = ["none", "skip_connect", "avg_pool_3x3", "conv_3x3"]


class Zero(nn.Module):
    def execute(self, x):
        return x * 0.0


class Identity(nn.Module):
    def execute(self, x):
        return x


def make_op(name, C):
    if name == "none":
        return Zero()
    if name == "skip_connect":
        return Identity()
    if name == "avg_pool_3x3":
        return nn.Pool(3, stride=1, padding=1, op="mean")
    return nn.Sequential(nn.ReLU(), nn.Conv(C, C, 3, padding=1, bias=False),
                         nn.BatchNorm(C, affine=False))


class MixedOp(nn.Module):
    def __init__(self, C):
        self._ops = [make_op(p, C) for p in PRIMITIVES]

    def execute(self, x, weights):
        result = 0
        for w, op in zip(weights, self._ops):
            result += w * op(x)
        return result


class Cell(nn.Module):
    def __init__(self, C, steps=2):
        self._steps = steps
        self._ops = [MixedOp(C) for i in range(steps) for _ in range(1 + i)]

    def execute(self, s0, weights):
        states, offset = [s0], 0
        for i in range(self._steps):
            s = sum(self._ops[offset + j](h, weights[offset + j]) for j, h in enumerate(states))
            offset += len(states)
            states.append(s)
        return states[-1]


class Network(nn.Module):
    def __init__(self, C, num_classes, criterion, steps=2):
        self._criterion = criterion
        self.stem = nn.Sequential(nn.Conv(1, C, 3, padding=1, bias=False), nn.BatchNorm(C))
        self.cells = [Cell(C, steps)]
        self.classifier = nn.Linear(C, num_classes)
        k = sum(1 + i for i in range(steps))
        self.hidden_params = {"alphas": jit.array(1e-3 * jit.randn(k, len(PRIMITIVES))).start_grad()}
        self._arch_parameters = list(self.hidden_params.values())

    def arch_parameters(self):
        return self._arch_parameters

    def execute(self, x):
        s = self.stem(x)
        weights = jit.nn.softmax(self.hidden_params["alphas"], dim=-1)
        for cell in self.cells:
            s = cell(s, weights)
        return self.classifier(s.mean(dims=(2, 3)))

    def genotype(self):
        w = jit.nn.softmax(self.hidden_params["alphas"], dim=-1).numpy()
        return [PRIMITIVES[1 + int(row[1:].argmax())] for row in w]

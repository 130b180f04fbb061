"""The cases of the composition matrix (``jboat_core.testing.matrix``), without Jittor:
what the registry allows, crossed with the matrix's axes, and the fixed CI sample.

Why an explicit product and not Hypothesis: every case has a stable identifier, the whole
matrix can be counted and listed (``python -m jboat_core.testing.matrix --list``), a CI
sample is a fixed, reproducible subset that covers every value of every axis and every
composition (``sample``), and a failure names its case exactly; nothing here gains from
shrinking.
"""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

#: Lower models of the matrix (``jboat_core.testing.models``).
MODELS = ("linear", "mlp", "convbn")
DTYPES = ("float32", "float64")
OPTIMIZERS = ("sgd", "momentum", "adam")
CHECKPOINTS = (0, 2, "sqrt")
POSITIONS = ("first", "later")
#: Inner steps of every case, and the learning rate per optimizer.
K = 4
LR = {"sgd": 0.05, "momentum": 0.02, "adam": 0.01}


@dataclass(frozen=True)
class Case:
    """One cell of the matrix."""

    gm: tuple
    na: tuple
    dtype: str
    optimizer: str
    checkpoint: object
    model: str
    position: str
    fo: str = ""

    @property
    def id(self) -> str:
        """The case's stable name, e.g. ``NGD>PTT+RAD-float64-adam-ckpt2-mlp-later`` or
        ``fo:SABA-float64-later``."""
        if self.fo:
            return f"fo:{self.fo}-{self.dtype}-{self.position}"
        ck = f"ckpt{self.checkpoint}" if self.checkpoint else "full"
        return (f"{'+'.join(self.gm)}>{'+'.join(self.na)}-{self.dtype}-{self.optimizer}-"
                f"{ck}-{self.model}-{self.position}")

    @property
    def meta(self) -> bool:
        """IAD compositions run on the meta-learning problem (theta = y_0 is upper)."""
        return "IAD" in self.na

    @property
    def terminal(self) -> str:
        """The operator that produces the result (DM, or the chain's last)."""
        return self.gm[-1] if self.gm[-1] == "DM" else self.na[-1]


def claim(cls) -> str:
    """The name of the built-in operator whose float64 target ``cls`` is checked against:
    its own name for a built-in, the built-in it derives from for a variant of one (a
    subclass keeps its parent's claim, as it keeps its other metadata), else ``""`` (a
    third-party operator: checked by what it declares)."""
    for base in cls.__mro__:
        if base.__module__.startswith("jboat_ops.") and base.__dict__.get("name"):
            return base.__dict__["name"]
    return ""


def canonical(case: "Case", registry=None) -> "Case":
    """``case`` with each operator named by its ``claim`` (its own name when it has none):
    what the reference reproduces."""
    from dataclasses import replace

    from ..plugins.registry import get_registry

    reg = registry or get_registry()
    name = lambda n: claim(reg.get(n).cls) or n  # noqa: E731
    return replace(case, gm=tuple(map(name, case.gm)), na=tuple(map(name, case.na)),
                   fo=name(case.fo) if case.fo else "")


def plan_of(na, registry=None):
    """The ``DynamicsPlan`` the chain ``na`` asks for (each operator's
    ``configure_dynamics`` with its default config)."""
    from ..contract.protocol import DynamicsPlan
    from ..plugins.registry import get_registry

    reg = registry or get_registry()
    plan = DynamicsPlan()
    for name in na:
        cls = reg.get(name).cls
        plan = cls.configure_dynamics(plan, cls.config_model())
    return plan


#: The dynamics the matrix's NumPy reference reproduces step by step (and their
#: variants, by ``claim``). Other dynamics (PGD's prox steps, SOLVED's user solver, a
#: third party's update) are checked by the conformance kit (RAD and PTT + RAD against
#: central differences of their own F(y_K(x))) and by their own exact suites
#: (tests/test_prox.py, tests/test_user_solver.py).
REFERENCE_DYNAMICS = frozenset({"NGD", "GDA", "DI", "DM"})


def compositions(registry=None) -> list[tuple[tuple, tuple]]:
    """Every ``(gm_op, na_op)`` the registry accepts: one or two dynamics operators (of
    those the reference reproduces, ``REFERENCE_DYNAMICS``) and one to three
    hyper-gradient operators, in execution order, without duplicates."""
    from ..plugins.config import parse_solver_config
    from ..plugins.registry import get_registry

    reg = registry or get_registry()
    dyn = [r.name for r in reg.records("dynamics")
           if claim(r.cls) in REFERENCE_DYNAMICS]
    hg = [r.name for r in reg.records("hypergradient")]
    found = []
    for nd, nh in itertools.product((1, 2), (1, 2, 3)):
        for gm, na in itertools.product(itertools.combinations(dyn, nd),
                                        itertools.combinations(hg, nh)):
            try:
                cfg = parse_solver_config({"gm_op": list(gm), "na_op": list(na),
                                           "lower_iters": K}, reg)
            except Exception:  # noqa: BLE001 - not a valid composition
                continue
            key = (tuple(cfg.gm_op), tuple(cfg.na_op))
            if key not in found:
                found.append(key)
    return found


def checkpointable(gm, na, registry=None) -> bool:
    """Whether ``checkpoint_every`` changes how the composition computes: its chain keeps
    the trajectory (not in forward mode) and the solver config accepts the option."""
    from ..plugins.config import parse_solver_config
    from ..plugins.registry import get_registry

    reg = registry or get_registry()
    if claim(reg.get(gm[-1]).cls) == "DM":
        return False
    plan = plan_of(na, reg)
    if not plan.track or plan.forward_mode:
        return False
    try:
        parse_solver_config({"gm_op": list(gm), "na_op": list(na), "lower_iters": K,
                             "checkpoint_every": 2}, reg)
    except Exception:  # noqa: BLE001 - refused: the dynamics do not support it
        return False
    return True


def solvers(registry=None) -> list[str]:
    """Every first-order (and stochastic) solver of the registry."""
    from ..plugins.registry import get_registry

    return [r.name for r in (registry or get_registry()).records("first_order")]


def all_cases(registry=None) -> list[Case]:
    """The whole matrix, in a fixed order: the compositions' cases, then the solvers' (a
    first-order solver runs with its own lower steps and its reference is written for an
    SGD lower optimizer on a linear model: its axes are the dtype and the position)."""
    out = []
    for name in solvers(registry):
        for dtype, pos in itertools.product(DTYPES, POSITIONS):
            out.append(Case((), (), dtype, "sgd", 0, "linear", pos, name))
    for gm, na in compositions(registry):
        ckpts = CHECKPOINTS if checkpointable(gm, na, registry) else (0,)
        for dtype, opt, ck, model, pos in itertools.product(DTYPES, OPTIMIZERS, ckpts, MODELS,
                                                            POSITIONS):
            out.append(Case(gm, na, dtype, opt, ck, model, pos))
    return out


def sample(cases: list[Case], size: int = 120, seed: int = 30, first: int = 8) -> list[Case]:
    """A fixed subset: every composition once, then cases chosen (seeded) so that every
    value of every axis appears, up to ``size`` cases, at most ``first`` of them (each a
    new process) in position ``"first"``."""
    rng = random.Random(seed)
    later = [c for c in cases if c.position == "later"]
    firsts = [c for c in cases if c.position == "first"]
    by_comp: dict = {}
    for c in later:
        by_comp.setdefault((c.gm, c.na, c.fo), []).append(c)
    chosen = [rng.choice(v) for v in by_comp.values()] + rng.sample(firsts, min(first,
                                                                               len(firsts)))
    for axis, values in (("dtype", DTYPES), ("optimizer", OPTIMIZERS),
                         ("checkpoint", CHECKPOINTS), ("model", MODELS)):
        for value in values:
            if not any(getattr(c, axis) == value for c in chosen):
                chosen.append(rng.choice([c for c in later if getattr(c, axis) == value]))
    rest = [c for c in later if c not in chosen]
    rng.shuffle(rest)
    chosen += rest[:max(0, size - len(chosen))]
    return sorted(set(chosen), key=cases.index)



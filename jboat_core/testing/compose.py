"""How the conformance kit composes an operator of any kind, and the objectives of its
problem (shared by ``conformance`` and ``correctness``)."""

from __future__ import annotations


#: The chain after a dynamics operator that is not ``differentiable`` (SOLVED) and its
#: settings: CG solved to convergence on the kit's 5-dimensional system.
IMPLICIT_CHAIN = ("CG",)
IMPLICIT_SECTION = {"CG": {"k": 50, "tolerance": 1e-14}}


def default_composition(cls, chain: list[str] | None = None) -> dict:
    """A solver config in which ``cls`` runs, whatever its kind: a hyper-gradient
    operator after NGD (plus a required partner, or RAD to finish a modifier), a dynamics
    operator before or as NGD with RAD (or its required partner; CG converged for one
    that is not ``differentiable``), a first-order solver alone. ``chain`` overrides the operator list of ``cls``'s kind."""
    name = cls.name
    if cls.kind == "first_order":
        return {"fo_op": [name]}
    own = list(chain) if chain else [name]
    partner = [cls.requires_any[0]] if cls.requires_any else []
    if cls.kind == "hypergradient":
        if not chain and cls.role == "modifier" and not partner:
            own.append("RAD")
        return {"gm_op": ["NGD"], "na_op": own + [p for p in partner if p not in own]}
    if not chain and cls.role == "modifier":
        own.append("NGD")
    if not getattr(cls, "differentiable", True):  # solved outside the graph (SOLVED)
        return {"gm_op": own, "na_op": partner or list(IMPLICIT_CHAIN), **IMPLICIT_SECTION}
    return {"gm_op": own, "na_op": partner or ["RAD"]}


def default_chain(cls) -> list[str]:
    """The operators of ``default_composition`` that are of ``cls``'s kind."""
    cfg = default_composition(cls)
    return cfg.get({"hypergradient": "na_op", "dynamics": "gm_op"}.get(cls.kind, "fo_op"))


class _Switch:
    """Objectives of the conformance problem that turn NaN on demand. F gets a small
    explicit term 0.05 |x|^2 (the ridge F alone does not depend on x), so that every
    method's first upper step is non-zero: ALTO's grad_x F, DM's first step with v = 0,
    PGDO at gamma_0 = 0."""

    def __init__(self, prob, explicit_x: bool = True):
        self.prob, self.nan_F, self.nan_f = prob, False, False
        self.rho = 0.05 if explicit_x else 0.0

    def f(self, feed, ul, ll, **kw):
        """The problem's f, NaN when ``nan_f``."""
        v = self.prob.ll_objective(feed, ul, ll, **kw)
        return v * float("nan") if self.nan_f else v

    def F(self, feed, ul, ll, **kw):
        """The problem's F (+ rho |x|^2), NaN when ``nan_F``."""
        v = self.prob.ul_objective(feed, ul, ll, **kw)
        if self.rho:
            v = v + (ul() * ul()).sum() * self.rho
        return v * float("nan") if self.nan_F else v

    def gda(self, ll_feed, ul_feed, ul, ll, **kw):
        """GDA's aggregation alpha F + (1 - alpha) f, alpha from the lower feed."""
        a = ll_feed["alpha"]
        return self.F(ul_feed, ul, ll, **kw) * a + self.f(ll_feed, ul, ll, **kw) * (1 - a)


def _registry(cls, registry):
    """The registry to compose ``cls`` in: ``registry``, or the installed operators with
    ``cls`` added when it is not installed (an operator under development)."""
    from ..plugins.registry import get_registry

    reg = registry or get_registry()
    try:
        if reg.get(cls.name).cls is cls:
            return reg
    except Exception:  # noqa: BLE001 - not registered (or a conflict): add it
        pass
    return reg.with_classes([cls])


def lower_solver(prob, classes):
    """The ridge problem's closed-form lower solver (``custom_root()``: grad_y f = 0) when
    an operator of ``classes`` needs the problem's ``ll_solver`` (SOLVED, a third party's
    bring-your-own-solver dynamics); else None."""
    if not any("ll_solver" in getattr(c, "requires_runtime", ()) for c in classes):
        return None
    from ..contract.optimality import custom_root

    @custom_root()
    def ridge(x, y0, feed):
        """y*(x) = H(x)^-1 A1'b1/n in NumPy float64."""
        return [prob.solution(x[0])]

    return ridge


def _classes(cfg, reg) -> list:
    """The classes of the operators ``cfg`` composes."""
    names = []
    for key in ("gm_op", "na_op", "fo_op"):
        value = cfg.get(key) or ()
        names += [value] if isinstance(value, str) else list(value)
    return [reg.get(n).cls for n in names]

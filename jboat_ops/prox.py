"""The built-in proximal operators and projections of PGD, registered by name
(``prox = "l1"`` in PGD's section): l1, weighted_l1, elastic_net, group_l1, nonneg (prox
maps), box, simplex, l1_ball, l2_ball (projections). Importing this module does not
import Jittor (each function imports it when called).

Every function is ``prox(z, t, **options) -> Var``: argmin_u 1/2 ||u - z||^2 + t g(u), with
``t`` = eta * strength (a number or a Var broadcast against ``z``); a projection ignores
``t``. Written with the active set as a constant mask, so reverse mode through them gives
the derivative where it exists and, **at the kinks, the derivative of the inactive side**:
|z_i| = t_i counts as off the support of the soft threshold (derivative 0), z_i = 0 as off
for the non-negative projection, z_i on a bound as clamped for the box, and a coordinate
whose projected value is exactly 0 as outside the simplex's / L1 ball's support. These are
the conventions of Bertrand et al. (the Jacobian restricted to the support); the kinks
have measure zero and a converged Lasso solution is generically off them.

References
----------
Parikh N., Boyd S., "Proximal algorithms", Found. Trends Optim., 2014.
Duchi J. et al., "Efficient projections onto the l1-ball for learning in high dimensions",
ICML 2008 (simplex and L1 ball by sorting).
Bertrand Q. et al., "Implicit differentiation of Lasso-type models for hyperparameter
optimization", ICML 2020.
"""

from __future__ import annotations

from jboat_core.contract import API_VERSION, ProxMap, hookimpl

JBOAT_API_VERSION = API_VERSION


def _jt():
    from jboat_core import import_jittor
    return import_jittor()


def _mask(cond, like):
    """A boolean Var as a constant 0/1 factor of ``like``'s dtype."""
    return cond.cast(like.dtype).stop_grad()


def _c(value, like):
    from jboat_core import constant
    return constant(value, like)


def _sign(z):
    return (_mask(z > 0, z) - _mask(z < 0, z)).stop_grad()


def l1(z, t):
    """Soft threshold S_t(z) = sign(z) max(|z| - t, 0): prox of t ||.||_1 (``t`` a number
    or one weight per coordinate: the weighted L1 norm sum_i t_i |z_i|)."""
    jt = _jt()
    t = _c(t, z)
    m = _mask(jt.abs(z) > t, z)
    return m * (z - _sign(z) * t)


def elastic_net(z, t, l1_ratio: float = 0.5):
    """prox of t (rho ||.||_1 + (1 - rho)/2 ||.||^2), rho = ``l1_ratio``:
    S_{t rho}(z) / (1 + t (1 - rho)) (scikit-learn's ElasticNet parametrisation)."""
    t = _c(t, z)
    rho = float(l1_ratio)
    return l1(z, t * _c(rho, z)) / (t * _c(1.0 - rho, z) + 1.0)


def group_l1(z, t, group_size: int = 1):
    """Block soft threshold: prox of t sum_g ||z_g||_2 over consecutive groups of
    ``group_size`` entries of the flattened ``z``: z_g max(1 - t_g / ||z_g||, 0), ``t`` a
    number or one weight per group (the weighted group Lasso)."""
    jt = _jt()
    g = int(group_size)
    flat = z.reshape((-1,))
    if flat.shape[0] % g:
        raise ValueError(f"group_l1: {flat.shape[0]} entries are not groups of {g}")
    blocks = flat.reshape((-1, g))
    norms = jt.sqrt((blocks * blocks).sum(1, keepdims=True))
    t = _c(t, z)
    if hasattr(t, "shape") and t.numel() > 1:
        if t.numel() != blocks.shape[0]:
            raise ValueError(f"group_l1: {t.numel()} weights for {blocks.shape[0]} groups of "
                             f"{g}: give one weight per group (or one number)")
        t = t.reshape((-1, 1))
    m = _mask(norms > t, z)
    safe = norms * m + (1.0 - m)
    return (blocks * m * (1.0 - t / safe)).reshape(z.shape)


def nonneg(z, t=None):
    """Projection onto y >= 0 (the prox of the indicator): max(z, 0)."""
    return z * _mask(z > 0, z)


def box(z, t=None, lower: float = 0.0, upper: float = 1.0):
    """Projection onto [lower, upper]^d: clip(z, lower, upper)."""
    inside = _mask((z > lower) & (z < upper), z)
    hi = _mask(z >= upper, z)
    lo = _mask(z <= lower, z)
    return z * inside + hi * _c(float(upper), z) + lo * _c(float(lower), z)


def _simplex_support(u, radius):
    """The threshold theta and the support mask of the projection of ``u`` (flat) onto
    {w >= 0, sum w = radius}: theta = max_j (sum_{i<=j} u_(i) - radius) / j over the
    sorted entries (Duchi et al.), all constants."""
    jt = _jt()
    ud = u.detach()
    _, s = jt.argsort(ud, descending=True)
    css = jt.cumsum(s, 0)
    k = jt.arange(1, s.shape[0] + 1).cast(u.dtype)
    theta = ((css - _c(float(radius), u)) / k).max()
    return _mask(ud > theta, u)


def simplex(z, t=None, radius: float = 1.0):
    """Projection onto the simplex {y >= 0, sum y = radius} (over every entry of ``z``):
    on the support S, y_S = z_S - (sum_S z - radius) / |S|, else 0."""
    flat = z.reshape((-1,))
    m = _simplex_support(flat, radius)
    shift = ((flat * m).sum() - _c(float(radius), z)) / m.sum()
    return ((flat - shift) * m).reshape(z.shape)


def l1_ball(z, t=None, radius: float = 1.0):
    """Projection onto {||y||_1 <= radius}: z inside, else sign(z) times the projection of
    |z| onto the simplex of that radius."""
    jt = _jt()
    flat = z.reshape((-1,))
    a = jt.abs(flat)
    inside = _mask(a.sum() <= radius, z)
    m = _simplex_support(a, radius)
    shift = ((a * m).sum() - _c(float(radius), z)) / (m.sum() + (1.0 - m.max()))
    out = _sign(flat) * (a - shift) * m
    return (flat * inside + out * (1.0 - inside)).reshape(z.shape)


def l2_ball(z, t=None, radius: float = 1.0):
    """Projection onto {||y||_2 <= radius}: z min(1, radius / ||z||)."""
    jt = _jt()
    n = jt.sqrt((z * z).sum())
    out = _mask(n > radius, z)
    r = _c(float(radius), z)
    return z * (out * r / (n * out + (1.0 - out)) + (1.0 - out))


_HERE = __name__
_PARIKH = "Parikh & Boyd, Proximal algorithms, Found. Trends Optim. 2014"
_DUCHI = ("Duchi et al., Efficient projections onto the l1-ball for learning in high "
          "dimensions, ICML 2008")

PROX_MAPS = (
    ProxMap(name="l1", function=f"{_HERE}:l1", summary="Soft threshold: prox of t ||y||_1 "
            "(the Lasso)", formula="sign(z) max(|z| - t, 0)", reference=_PARIKH),
    ProxMap(name="weighted_l1", function=f"{_HERE}:l1", summary="Soft threshold with one "
            "weight per coordinate: prox of sum_i t_i |y_i| (the weighted Lasso)",
            formula="sign(z_i) max(|z_i| - t_i, 0)", reference=_PARIKH),
    ProxMap(name="elastic_net", function=f"{_HERE}:elastic_net", summary="Prox of "
            "t (rho ||y||_1 + (1 - rho)/2 ||y||^2)", formula="S_{t rho}(z) / (1 + t (1 - rho))",
            reference="Zou & Hastie, Regularization and variable selection via the elastic "
                      "net, JRSS-B 2005",
            options={"l1_ratio": (0.5, "rho, the L1 share of the penalty")}),
    ProxMap(name="group_l1", function=f"{_HERE}:group_l1", summary="Block soft threshold: "
            "prox of t sum_g ||y_g||_2 (group Lasso, consecutive groups)",
            formula="z_g max(1 - t / ||z_g||, 0)",
            reference="Yuan & Lin, Model selection and estimation in regression with grouped "
                      "variables, JRSS-B 2006",
            options={"group_size": (1, "entries per group (consecutive, flattened)")},
            weights="group"),
    ProxMap(name="nonneg", function=f"{_HERE}:nonneg", projection=True,
            summary="Projection onto y >= 0 (non-negative least squares)",
            formula="max(z, 0)", reference=_PARIKH),
    ProxMap(name="box", function=f"{_HERE}:box", projection=True,
            summary="Projection onto the box [lower, upper]^d", formula="clip(z, lower, upper)",
            reference=_PARIKH,
            options={"lower": (0.0, "lower bound"), "upper": (1.0, "upper bound")}),
    ProxMap(name="simplex", function=f"{_HERE}:simplex", projection=True,
            summary="Projection onto the simplex {y >= 0, sum y = radius}",
            formula="max(z - theta, 0), theta by sorting", reference=_DUCHI,
            options={"radius": (1.0, "the sum")}),
    ProxMap(name="l1_ball", function=f"{_HERE}:l1_ball", projection=True,
            summary="Projection onto the L1 ball {||y||_1 <= radius}",
            formula="sign(z) max(|z| - theta, 0), theta by sorting", reference=_DUCHI,
            options={"radius": (1.0, "the radius")}),
    ProxMap(name="l2_ball", function=f"{_HERE}:l2_ball", projection=True,
            summary="Projection onto the L2 ball {||y||_2 <= radius}",
            formula="z min(1, radius / ||z||)", reference=_PARIKH,
            options={"radius": (1.0, "the radius")}),
)


@hookimpl
def jboat_register_prox_maps(register):
    for prox in PROX_MAPS:
        register(prox)

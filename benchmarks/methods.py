"""The benchmarked chains: settings shared by every framework, start point, reference
value and expected cost floor."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Shared operator settings (the upstream ``boat_config`` sections have the same names).
CG_K, NS_K, RGT_T, FD_R = 10, 10, 5, 1e-2
OP_CONFIG = {"CG": {"k": CG_K, "tolerance": 1e-10}, "NS": {"k": NS_K},
             "RGT": {"truncate_iter": RGT_T}, "FD": {"r": FD_R}}


@dataclass(frozen=True)
class Method:
    """One chain.

    Attributes
    ----------
    chain : tuple of str
        Operator names in jboat's order.
    start : str
        ``"solution"`` (implicit operators are exact at y*) or ``"generic"``.
    tracked : bool
        Whether the chain keeps the trajectory (memory O(K)) or not (O(1)).
    problems : tuple of str
        Problems it applies to (IAD needs the same shapes at both levels: ridge only).
    """

    chain: tuple
    start: str
    tracked: bool
    problems: tuple = ("ridge", "logistic")

    @property
    def name(self) -> str:
        return "+".join(self.chain)


METHODS = [
    Method(("RAD",), "generic", True),
    Method(("PTT", "RAD"), "generic", True),
    Method(("RGT", "RAD"), "generic", True),
    Method(("IAD",), "generic", True, ("ridge",)),
    Method(("FOA", "IAD"), "generic", True, ("ridge",)),
    Method(("CG",), "solution", False),
    Method(("NS",), "solution", False),
    Method(("PTT", "CG"), "solution", True),
    Method(("FD",), "generic", False),
    Method(("IGA",), "generic", False),
]
BY_NAME = {m.name: m for m in METHODS}


def lower_lr(prob) -> float:
    """The lower-level step size every framework uses on ``prob``: 1/L, rounded to 4 places."""
    return round(1.0 / prob.lipschitz(), 4)


def start_point(method: Method, prob) -> np.ndarray:
    return prob.solution() if method.start == "solution" else prob.y_generic


def reference(method: Method, prob, y0, K: int, lr: float):
    """(what, exact float64 value) that the chain should return."""
    name = method.name
    if name == "RAD":
        return "unrolled dF(y_K)/dx", prob.unrolled(y0, K, lr)[0]
    if name == "PTT+RAD":
        k = prob.k_star(y0, K, lr)
        return f"unrolled dF(y_k*)/dx, k*={k}", prob.unrolled(y0, K, lr, at=k)[0]
    if name == "RGT+RAD":
        return f"unrolled, first {RGT_T} steps constant", prob.unrolled(y0, K, lr,
                                                                        truncate=RGT_T)[0]
    if name == "IAD":
        return "MAML dF(y_K)/dy_0", prob.unrolled(y0, K, lr)[1]
    if name == "FOA+IAD":
        return "FOMAML grad F(y_K)", prob.grad_F(prob.trajectory(y0, K, lr)[-1])
    if name in ("CG", "NS", "PTT+CG"):
        return "IFT at y*", prob.ift(y0)
    if name == "FD":
        return "DARTS formula (w=y_0)", prob.fd_formula(y0, K, lr, FD_R)
    if name == "IGA":
        return "IGA formula at y_K", prob.iga_formula(y0, K, lr)
    raise KeyError(name)


def floor_cost(method: Method, K: int) -> tuple[float, float, str]:
    """(gradients, HVPs, text): the cheapest plausible cost of one hyper-iteration
    (K inner gradient steps included)."""
    name = method.name
    if name in ("RAD", "IAD", "PTT+RAD"):
        return 2.0 * K, 0.0, f"2K={2 * K} grads"
    if name == "RGT+RAD":
        return RGT_T + 2.0 * (K - RGT_T), 0.0, f"T+2(K-T)={RGT_T + 2 * (K - RGT_T)} grads"
    if name == "FOA+IAD":
        return K + 1.0, 0.0, f"K+1={K + 1} grads"
    if name in ("CG", "PTT+CG"):
        return float(K), CG_K + 2.0, f"K={K} grads + k+2={CG_K + 2} HVPs"
    if name == "NS":
        return float(K), NS_K + 2.0, f"K={K} grads + k+2={NS_K + 2} HVPs"
    if name == "FD":
        return K + 3.0, 0.0, f"K+3={K + 3} grads"
    if name == "IGA":
        return K + 2.0, 0.0, f"K+2={K + 2} grads"
    raise KeyError(name)


def accuracy(got, ref) -> dict:
    """Cosine similarity and relative L2 error (None when undefined)."""
    got = np.asarray(got, float).ravel()
    ref = np.asarray(ref, float).ravel()
    ng, nr = np.linalg.norm(got), np.linalg.norm(ref)
    cos = float(got @ ref / (ng * nr)) if ng > 0 and nr > 0 else None
    rel = float(np.linalg.norm(got - ref) / nr) if nr > 0 else None
    finite = bool(np.all(np.isfinite(got)))
    return {"cosine": cos, "rel_err": rel, "finite": finite, "norm": float(ng)}

"""Hand-written Jittor, no framework: each chain's math as a short script would write it.

This is the floor of *any* Jittor implementation on these graphs: the same objectives
(:mod:`.jt_objectives`), the same settings, and nothing else: no validation, no
finiteness check, no trajectory store, CG and NS with a fixed number of iterations (no
stop test, so no sync inside the solve), PTT with its one unavoidable sync (k* is an
argmax). jboat's time over this one is its framework overhead; this one's time over
JBOAT's bounds what any Jittor code could gain over JBOAT on the same machine.
"""

from __future__ import annotations


from .base import Bench


def setup(prob, method, y0, lr, op_config) -> Bench:
    import jittor as jt

    from . import jt_objectives as obj

    ll, ul, ll_feed, ul_feed = obj.build(prob, y0)
    w0, x = ll.w, ul.w
    chain = method.chain
    T = op_config["RGT"]["truncate_iter"] if "RGT" in chain else 0
    first_order = "FOA" in chain
    untracked = chain[-1] in ("CG", "NS", "FD", "IGA")  # these use y_K (or y_k*) only

    def f(w):
        ll.w = w
        return obj.ll_loss(ll_feed, ul, ll)

    def F(w):
        ll.w = w
        return obj.ul_loss(ul_feed, ul, ll)

    def inner(K):
        """y_0..y_K; steps before T (RGT), and all of them for untracked chains, detached."""
        ys, w = [w0], w0
        for k in range(K):
            g = jt.grad(f(w), w)
            if first_order:
                g = g.detach()
            w = w - g * lr
            if k < T or untracked:
                w = w.detach()
            ys.append(w)
        return ys

    def hvp_solve(y, b, kind):
        gy = jt.grad(f(y), y)
        hv = lambda v: jt.grad((gy * v.detach()).sum(), y).detach()  # noqa: E731
        if kind == "NS":
            v = s = b
            for _ in range(op_config["NS"]["k"]):
                v = v - hv(v) * lr
                s = s + v
            return gy, s * lr
        xk, r, p = b * 0, b, b
        rs = (r * r).sum()
        for _ in range(op_config["CG"]["k"]):
            ap = hv(p)
            alpha = rs / (p * ap).sum()
            xk, r = xk + p * alpha, r - ap * alpha
            rs_new = (r * r).sum()
            p, rs = r + p * (rs_new / rs), rs_new
        return gy, xk

    def implicit(y, kind):
        y = y.detach()
        gy_F, gx_F = jt.grad(F(y), [y, x])
        gy, v = hvp_solve(y, gy_F.detach(), kind)
        return gx_F - jt.grad((gy * v.detach()).sum(), x)

    def step(K):
        ys = inner(K)
        last = chain[-1]
        y = ys[-1]
        if chain[0] == "PTT":
            ups = jt.concat([F(v).detach().reshape(1) for v in ys[T + 1:]])
            y = ys[T + 1 + int(ups.argmax(0)[0].item())]
        if last == "RAD":
            g = jt.grad(F(y), x)
        elif last == "IAD":
            g = jt.grad(F(y), w0)
        elif last in ("CG", "NS"):
            g = implicit(y, last)
        elif last == "FD":
            y = y.detach()
            gx_F, v = jt.grad(F(y), [x, y])
            eps = op_config["FD"]["r"] / jt.sqrt((v * v).sum())
            plus = jt.grad(f(w0 + v * eps), x)
            minus = jt.grad(f(w0 - v * eps), x)
            g = gx_F - (plus - minus) * (lr / (eps * 2))
        elif last == "IGA":
            y = y.detach()
            dFy, dFx = jt.grad(F(y), [y, x])
            dfy, dfx = jt.grad(f(y), [y, x])
            g = dFx - dfx * ((dFy * dfy).sum() / (dfy * dfy).sum())
        else:
            raise KeyError(method.name)
        ll.w = w0
        return g.numpy().ravel()

    grad_unit, hvp_unit = obj.units(ll, ul, ll_feed)
    return Bench(step, grad_unit, hvp_unit,
                 {"jittor": jt.__version__, "matmul": obj.MATMUL,
                  "use_mkl": bool(getattr(jt.compile_extern, "mkl_ops", None))})

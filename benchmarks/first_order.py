"""First-order solvers: time per outer iteration and time to tolerance, jboat against
JBOAT (``boat-jit==1.1.1``: VSO, VFO, MESO, PGDO) and BOAT (``boat-torch==1.1.1``: all
six), issue 12.

    python -m benchmarks.first_order                   # 3 rounds, order rotated
    python -m benchmarks.first_order --methods VFO,MESO --sizes small --rounds 1

Problem: the benchmarks' ridge problem (``benchmarks.problems``; small: x, y in R^50,
n = 100; large: R^5000, n = 1000) with the upper objective F + rho/2 |x|^2 (rho = 0.01),
so that the bilevel optimum x* is finite and grad_x F is used. Every framework runs the
same objective code (``adapters/jt_objectives``, ``adapters/torch_objectives``) with the
same settings per method (those of ``tests/test_first_order.py``'s convergence test):
SGD 0.1 below (at most 0.9 / L, L the lower curvature, which also caps the methods' inner
step sizes), Adam 0.03 above, ``lower_iters`` and the method's section.

Timed: one whole ``run_iter`` (for the upstream packages that includes what their
``run_iter`` always does besides: printing to a null stream, two loss evaluations on the
real models, the JSON loss log), median over the iterations after 3 warm-up ones.
Time to tolerance (small size): outer iterations until F(x_t, y*(x_t)) - F* < 3 % of
F(x_0) - F*, F* from float64 gradient descent with the exact implicit gradient, times the
median iteration time; "not reached" after ``--max-iters``. One process per
configuration, with the framework's own venv. Results: ``results/first_order.json`` and
``results/first_order.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np

from benchmarks.rounds import RESULTS, ROOT, progress, publish, rotated, run_worker
RHO, LL_LR, UL_LR, TOL = 0.01, 0.1, 0.03, 0.03
SETTINGS = {  # K and the section, per method
    "VSO": (50, {"z_loop": 30, "z_lr": 0.05, "ll_l2_reg": 0.0, "ul_l2_reg": 0.0,
                 "ul_ln_reg": 3.0, "reg_decay": 0.0}),
    "VFO": (10, {"y_hat_lr": 0.1, "u1": 1.0, "eta": 0.5}),
    "MESO": (1, {"eta": 0.1, "gamma_1": 1.0, "c0": 1.0, "y_hat_lr": 0.1}),
    "PGDO": (10, {"y_hat_lr": 0.1, "gamma_init": 3.0, "gamma_max": 3.0,
                  "gamma_argmax_step": 5000, "penalty": "difference"}),
    "ALTO": (1, {}),
    "GAFFO": (1, {"lambda": 1.0, "sigma": 0.01, "maximize": False}),
}
UPSTREAM = {"boatjit": ("VSO", "VFO", "MESO", "PGDO"),
            "boattorch": ("VSO", "VFO", "MESO", "PGDO", "ALTO", "GAFFO")}


def _env(framework: str = "jboat"):
    from .envsetup import prepare
    prepare(framework)


def reference(prob):
    """(value(x) = F(x, y*(x)) + rho/2 |x|^2, F*) in float64."""
    D = prob.data
    A1, b1, A2, b2 = D["A1"], D["b1"], D["A2"], D["b2"]
    n1, n2 = len(b1), len(b2)
    G, c = A1.T @ A1 / n1, A1.T @ b1 / n1

    def ystar(x):
        return np.linalg.solve(G + np.diag(np.exp(x)), c)

    def value(x):
        r = A2 @ ystar(x) - b2
        return r @ r / (2 * n2) + 0.5 * RHO * x @ x

    def grad(x):
        y = ystar(x)
        v = np.linalg.solve(G + np.diag(np.exp(x)), A2.T @ (A2 @ y - b2) / n2)
        return RHO * x - np.exp(x) * y * v

    x = np.asarray(D["x"], dtype=np.float64).copy()
    for _ in range(200_000):
        g = grad(x)
        if np.linalg.norm(g) < 1e-10:
            break
        x -= 0.5 * g
    return value, value(x)


def _upstream_config(method: str, K: int, section: dict, models, opts, log: str, torch: bool,
                     lr: float):
    ll, ul = models
    sec = dict(section)
    if method == "PGDO":
        sec["update_y_ahead" if torch else "updata_y_ahead"] = False
    base = {"fo_op": method, "gm_op": None, "na_op": None, "lower_iters": K,
            "return_grad": False, "accumulate_grad": False, "copy_last_param": False,
            "loss_log_path": log, "lower_level_model": ll, "upper_level_model": ul,
            "lower_level_var": list(ll.parameters()), "upper_level_var": list(ul.parameters()),
            "lower_level_opt": opts[0], "upper_level_opt": opts[1],
            "GDA": {"alpha_init": 0.5, "alpha_decay": 0.9}, "RGT": {"truncate_iter": 0},
            "VSO": _steps(SETTINGS["VSO"][1], lr), "VFO": _steps(SETTINGS["VFO"][1], lr),
            "MESO": _steps(SETTINGS["MESO"][1], lr),
            "PGDO": {**_steps(SETTINGS["PGDO"][1], lr),
                     "update_y_ahead" if torch else "updata_y_ahead": False},
            method: sec}
    base.update(device="cpu")  # JBOAT's VFO and PGDO read it too
    base.update(fo_ol_batch_input=False) if torch else base.update(fogm_batch_input=False)
    return base


def _steps(section: dict, lr: float) -> dict:
    """The method's inner step sizes capped at the stable ``lr`` (the large problem's
    curvature is higher than the small one's)."""
    keys = ("z_lr", "y_hat_lr", "eta") if section else ()
    return {k: (min(v, lr) if k in keys and isinstance(v, float) else v)
            for k, v in section.items()}


def _stepper(framework: str, method: str, prob):
    """(step(t), x() -> ndarray, info) for one framework."""
    K, section = SETTINGS[method]
    lr = min(LL_LR, round(0.9 / prob.lipschitz(), 4))
    section = _steps(section, lr)
    if method == "VSO" and prob.dim_y > 1000:  # its barrier multiplies the curvature
        section["z_lr"] = 0.005
    y0 = 0.1 * np.random.RandomState(0).randn(prob.dim_y)  # the same start everywhere
    if framework == "boattorch":
        import torch

        from .envsetup import threads
        torch.set_num_threads(threads())
        import boat_torch
        from boat_torch.boat_opt import Problem as Up

        from .adapters import torch_objectives as obj
        ll, ul, llf, ulf = obj.build(prob, y0)
        ulf["rho"] = RHO
        opts = (torch.optim.SGD(ll.parameters(), lr), torch.optim.Adam(ul.parameters(), UL_LR))
        info = {"torch": torch.__version__, "boat_torch": getattr(boat_torch, "__version__", "1.1.1")}
    else:
        import jittor as jt

        from .adapters import jt_objectives as obj
        ll, ul, llf, ulf = obj.build(prob, y0)
        ulf["rho"] = RHO
        opts = (jt.optim.SGD(ll.parameters(), lr), jt.optim.Adam(ul.parameters(), UL_LR))
        info = {"jittor": jt.__version__}
    x_of = lambda: ul.w.detach().numpy().astype(np.float64) if framework == "boattorch" \
        else ul.w.numpy().astype(np.float64)  # noqa: E731
    if framework == "jboat":
        from jboat_core import Problem

        p = Problem({"fo_op": method, "lower_iters": K, method: section},
                    ll_objective=obj.ll_loss, ul_objective=obj.ul_loss_reg, ll_model=ll,
                    ul_model=ul, ll_opt=opts[0], ul_opt=opts[1])
        return (lambda t: p.run_iter(llf, ulf, t)), x_of, info
    if framework == "boatjit":
        import boat_jit  # noqa: F401
        from boat_jit.boat_opt import Problem as Up
    fd, log = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cfg = _upstream_config(method, K, section, (ll, ul), opts, log, framework == "boattorch",
                           lr)
    cfg["VSO"] = dict(section) if method == "VSO" else cfg["VSO"]
    mod = "torch_objectives" if framework == "boattorch" else "jt_objectives"
    loss_cfg = {"lower_level_loss": {"function": f"benchmarks.adapters.{mod}.ll_loss"},
                "upper_level_loss": {"function": f"benchmarks.adapters.{mod}.ul_loss_reg"}}
    with contextlib.redirect_stdout(io.StringIO()):
        p = Up(cfg, loss_cfg)
        p.build_ll_solver()
        p.build_ul_solver()

    def step(t):
        with contextlib.redirect_stdout(io.StringIO()):
            p.run_iter(llf, ulf, t)
    return step, x_of, info


def worker(framework: str, method: str, size: str, max_iters: int, large_iters: int) -> dict:
    sys.path.insert(0, str(ROOT))
    _env(framework)
    from .problems import make_problem

    out = {"framework": framework, "method": method, "size": size}
    try:
        prob = make_problem("ridge", size)
        value, best = reference(prob) if size == "small" else (None, None)
        step, x_of, info = _stepper(framework, method, prob)
        gap0 = value(x_of()) - best if value else None
        times, reached = [], None
        n = max_iters if size == "small" else large_iters
        for t in range(n):
            t0 = time.perf_counter()
            step(t)
            times.append(time.perf_counter() - t0)
            if value is not None:
                gap = (value(x_of()) - best) / gap0
                if not np.isfinite(gap):
                    raise FloatingPointError(f"F(x, y*(x)) is {gap} at iteration {t}")
                if reached is None and gap < TOL:
                    reached = t + 1
                    if len(times) > 40:
                        break
        med = statistics.median(times[3:] if len(times) > 5 else times)
        from .envsetup import describe
        out.update(ok=True, info={**info, **describe()}, first_s=times[0], median_s=med, iterations=len(times),
                   reached=reached, to_tol_s=reached * med if reached else None,
                   final_gap=(value(x_of()) - best) / gap0 if value else None)
    except Exception as exc:  # an upstream failure is a result too
        out.update(ok=False, error=f"{type(exc).__name__}: {exc}"[:300])
    return out


def _run_one(python, framework, method, size, max_iters, large_iters, timeout) -> dict:
    return run_worker(python, "first_order", (framework, method, size, max_iters, large_iters),
                      {"framework": framework, "method": method, "size": size}, timeout, 300)


def _cell(rs, key, fmt):
    ok = [r[key] for r in rs if r.get("ok") and r.get(key) is not None]
    return fmt(statistics.median(ok)) if ok else ("not reached" if any(r.get("ok") for r in rs)
                                                 else "failed")


def report(records: list[dict]) -> str:
    lines = ["| method | size | jboat ms/it | JBOAT ms/it | BOAT ms/it | jboat / faster "
             "anchor (min-max) | jboat iters (s) to 3 % | JBOAT iters to 3 % | BOAT iters to 3 % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for size in ("small", "large"):
        for method in SETTINGS:
            rs = {fw: [r for r in records if r["method"] == method and r["size"] == size
                       and r["framework"] == fw] for fw in ("jboat", "boatjit", "boattorch")}
            if not rs["jboat"]:
                continue
            ms = {fw: _cell(v, "median_s", lambda s: f"{1e3 * s:.2f}") if v else "-"
                  for fw, v in rs.items()}
            ratios = []
            for k in sorted({r["round"] for r in rs["jboat"] if r.get("ok")}):
                anchors = [r["median_s"] for fw in ("boatjit", "boattorch") for r in rs[fw]
                           if r.get("ok") and r["round"] == k]
                mine = [r["median_s"] for r in rs["jboat"] if r.get("ok") and r["round"] == k]
                if anchors and mine:
                    ratios.append(mine[0] / min(anchors))
            ratio = (f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
                     if ratios else "-")
            its = {fw: (_cell(v, "reached", lambda n: f"{n:.0f}") if v else "-")
                   for fw, v in rs.items()}
            secs = _cell(rs["jboat"], "to_tol_s", lambda s: f"{s:.2f}")
            tol = f"{its['jboat']} ({secs})" if size == "small" else "-"
            lines.append(f"| {method} | {size} | {ms['jboat']} | {ms['boatjit']} | "
                         f"{ms['boattorch']} | {ratio} | {tol} | "
                         f"{its['boatjit'] if size == 'small' else '-'} | "
                         f"{its['boattorch'] if size == 'small' else '-'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--methods", default=",".join(SETTINGS))
    ap.add_argument("--sizes", default="small,large")
    ap.add_argument("--frameworks", default="jboat,boatjit,boattorch")
    ap.add_argument("--max-iters", type=int, default=2000)
    ap.add_argument("--large-iters", type=int, default=15)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--report", action="store_true", help="only rewrite the table")
    ap.add_argument("--python", action="append", default=[], metavar="FW=PATH")
    args = ap.parse_args(argv)
    if args.report:
        table = report(json.loads((RESULTS / "first_order.json").read_text()))
        (RESULTS / "first_order.md").write_text(table)
        print(table)
        return 0
    pythons = {"jboat": sys.executable, "boatjit": "/opt/bench-boatjit/bin/python",
               "boattorch": "/opt/bench-boattorch/bin/python"}
    pythons.update(dict(p.split("=", 1) for p in args.python))
    fws = args.frameworks.split(",")
    configs = [(fw, m, s) for s in args.sizes.split(",") for m in args.methods.split(",")
               for fw in fws if fw == "jboat" or m in UPSTREAM.get(fw, ())]
    records = []
    for k, (fw, m, s) in rotated(configs, args.rounds):
        rec = _run_one(pythons[fw], fw, m, s, args.max_iters, args.large_iters, args.timeout)
        rec["round"] = k
        records.append(rec)
        state = (f"{1e3 * rec['median_s']:.2f} ms, reached {rec.get('reached')}"
                 if rec.get("ok") else rec.get("error"))
        progress(f"round {k}: {fw:9s} {m:5s} {s:5s} {state}")
    publish("first_order", records, report(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())

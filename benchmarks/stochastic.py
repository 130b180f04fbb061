"""Stochastic bilevel solvers against the deterministic ones, benchopt style (issue 20).

    python -m benchmarks.stochastic                    # full: 3 problems x 8 methods x 5 seeds
    python -m benchmarks.stochastic --size tiny --seeds 1 --out /tmp/st   # smoke (seconds)

Problems (data from scikit-learn; objectives are means over the examples):

* ``quadratic``: f = mean_i (a_i'y - b_i - e_i'x)^2/2 + mu/2 |y|^2, F = mean_j (c_j'y -
  d_j)^2/2 + lam/2 |x|^2 (n = m = 4,096, y in R^50, x in R^10): h(x) = F(x, y*(x)), its
  gradient and x* in closed form.
* ``ijcnn1``: L2-regularised logistic regression with one penalty per feature,
  f = mean_i log(1 + exp(-t_i a_i'y)) + 1/2 sum_k e^{x_k} y_k^2, F = the same loss on
  validation data, on ``make_classification`` data of ijcnn1's shape (49,990 training x
  22 features, 10,000 validation; benchopt's ijcnn1 problem).
* ``cleaning``: digits data cleaning: half of the training labels (p = 0.5) replaced by
  random ones, a weight sigmoid(x_i) per training example, f = mean_i sigmoid(x_i)
  CE(W a_i + b, t_i) + mu/2 |(W, b)|^2 (900 training examples, y in R^650, x in R^900),
  F = the cross-entropy on 450 clean validation examples; the metric is the test error
  (447 held-out examples) of the current lower iterate.

Reported at ~20 points of each run, outside the timed part (as benchopt does): h(x) =
F(x, y*(x)) and |grad h(x)|^2 (y*(x) and the implicit gradient in float64: closed form,
Newton, or L-BFGS + CG), against the run time (sum of ``run_iter`` times) and against
the oracle calls (per-example gradients and Hessian/cross-derivative-vector products: a
minibatch of b counts b, a full-batch call n). Median and 10 %/90 % quantiles over the
seeds (the minibatch draws; the start point is the same). Deterministic methods on the
same plots: AID-CG (NGD + CG) and RHG (NGD + RAD), full batch, warm-started.

Each (problem, method) first runs 2 untimed iterations, so that Jittor's kernel
compilation is not on the curves. Outputs: ``results/stochastic.json`` (curves), ``results/stochastic.md`` (table) and
``docs/stochastic.png`` (curves), or under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STOCHASTIC = ("SOBA", "SABA", "MASOBA", "StocBiO", "AmIGO", "TTSA")
DETERMINISTIC = ("AID-CG", "RHG")
BATCH = 64


def _sig(z):
    return 0.5 * (1 + np.tanh(0.5 * z))


# -- problems ------------------------------------------------------------------------------
class Quadratic:
    name = "quadratic"

    def __init__(self, tiny=False):
        rng = np.random.RandomState(0)
        n, d, p = (256, 10, 4) if tiny else (4096, 50, 10)
        self.A, self.b, self.E = rng.randn(n, d) / np.sqrt(d), rng.randn(n), rng.randn(n, p) / np.sqrt(p)
        self.C, self.c = rng.randn(n, d) / np.sqrt(d), rng.randn(n)
        self.mu, self.lam, self.n = 0.1, 0.01, n
        self.x0, self.y0 = np.full(p, 2.0), np.zeros(d)  # h(x0) = 0.70, h* = 0.50
        self.lr = (0.5, 1.0)  # lower (rho) and upper (gamma) step sizes
        self.M = self.A.T @ self.A / n + self.mu * np.eye(d)

    def feeds(self):
        return {"A": self.A, "b": self.b, "E": self.E}, {"C": self.C, "c": self.c}

    def objectives(self, jt):
        from jboat_core.testing.problems import shifted_quadratic
        return shifted_quadratic(self.mu, self.lam)

    def exact(self, x, y):
        ys = np.linalg.solve(self.M, self.A.T @ (self.b + self.E @ x) / self.n)
        r = self.C @ ys - self.c
        gy = self.C.T @ r / self.n
        v = np.linalg.solve(self.M, gy)
        g = self.lam * x + self.E.T @ (self.A @ v) / self.n
        return 0.5 * r @ r / self.n + 0.5 * self.lam * x @ x, g @ g, None


class Logistic:
    name = "ijcnn1"

    def __init__(self, tiny=False):
        from sklearn.datasets import make_classification
        n, m = (512, 256) if tiny else (49_990, 10_000)
        X, t = make_classification(n + m, 21, n_informative=10, n_clusters_per_class=1,
                                   flip_y=0.05, class_sep=0.7, weights=[0.9], random_state=0)
        X = np.hstack([(X - X.mean(0)) / X.std(0), np.ones((n + m, 1))])  # 22: + intercept
        t = 2.0 * t - 1
        self.A, self.t, self.C, self.s = X[:n], t[:n], X[n:], t[n:]
        self.x0, self.y0 = np.zeros(22), np.zeros(22)
        self.lr = (0.5, 1.0)

    def feeds(self):
        return {"A": self.A, "t": self.t}, {"A": self.C, "t": self.s}

    def objectives(self, jt):
        def f(feed, ul, ll, **kw):
            z, _ = ll(feed["A"], **kw)
            y = kw["params"][0] if kw.get("params") is not None else ll.w
            return jt.nn.softplus(-feed["t"] * z).mean() + (jt.exp(ul()) * y * y).sum() * 0.5

        def F(feed, ul, ll, **kw):
            z, _ = ll(feed["A"], **kw)
            return jt.nn.softplus(-feed["t"] * z).mean()
        return f, F

    def exact(self, x, y):
        A, t, ex = self.A, self.t, np.exp(x)
        w = np.array(y, float)
        for _ in range(50):
            s = _sig(-t * (A @ w))
            g = -A.T @ (t * s) / len(t) + ex * w
            H = (A.T * (s * (1 - s))) @ A / len(t) + np.diag(ex)
            w = w - np.linalg.solve(H, g)
            if np.linalg.norm(g) < 1e-11:
                break
        z = self.s * (self.C @ w)
        gF = -self.C.T @ (self.s * _sig(-z)) / len(z)
        v = np.linalg.solve(H, gF)
        grad = -(ex * w * v)
        return float(np.mean(np.logaddexp(0, -z))), grad @ grad, None


class Cleaning:
    name = "cleaning"

    def __init__(self, tiny=False):
        from sklearn.datasets import load_digits
        X, lab = load_digits(return_X_y=True)
        rng = np.random.RandomState(0)
        perm = rng.permutation(len(lab))
        X, lab = X[perm] / 16.0, lab[perm]
        ntr, nval = (200, 100) if tiny else (900, 450)
        self.mu = 1e-2
        noisy = lab[:ntr].copy()
        flip = rng.rand(ntr) < 0.5
        noisy[flip] = rng.randint(0, 10, flip.sum())
        self.A, self.T = X[:ntr], np.eye(10)[noisy]
        self.V, self.TV = X[ntr:ntr + nval], np.eye(10)[lab[ntr:ntr + nval]]
        self.Xt, self.lt = X[ntr + nval:], lab[ntr + nval:]
        self.x0, self.y0 = np.zeros(ntr), np.zeros(650)
        self.lr = (0.5, 50.0)  # x moves per example: its gradient is O(1/n)
        self._w = np.zeros(650)

    def feeds(self):
        return ({"A": self.A, "T": self.T, "idx": np.arange(len(self.A), dtype=np.float32)},
                {"A": self.V, "T": self.TV})

    def model(self, jt):
        class Linear(jt.nn.Module):
            def __init__(self):
                self.W = jt.zeros((64, 10))
                self.b = jt.zeros((10,))

            def execute(self, A):
                return jt.matmul(A, self.W) + self.b
        return Linear()

    def objectives(self, jt):
        mu = self.mu

        def ce(logits, T):
            return jt.nn.logsumexp(logits, dim=1) - (logits * T).sum(1)

        def f(feed, ul, ll, **kw):
            W, b = kw["params"] if kw.get("params") is not None else (ll.W, ll.b)
            idx = feed["idx"].int32()
            weights = jt.sigmoid(ul()[idx])
            reg = (W * W).sum() + (b * b).sum()
            return (weights * ce(ll(feed["A"], **kw), feed["T"])).mean() + reg * (0.5 * mu)

        def F(feed, ul, ll, **kw):
            return ce(ll(feed["A"], **kw), feed["T"]).mean()
        return f, F

    def _split(self, w):
        return w[:640].reshape(64, 10), w[640:]

    def _probs(self, A, w):
        W, b = self._split(w)
        z = A @ W + b
        z = z - z.max(1, keepdims=True)
        p = np.exp(z)
        return p / p.sum(1, keepdims=True)

    def _lower(self, w, sx):
        P = self._probs(self.A, w)
        n = len(self.A)
        loss = -(np.log(P + 1e-300) * self.T).sum(1)
        G = (sx[:, None] * (P - self.T)) / n
        grad = np.concatenate([(self.A.T @ G).ravel(), G.sum(0)]) + self.mu * w
        return float(sx @ loss / n + 0.5 * self.mu * w @ w), grad

    def _hvp(self, w, sx, u):
        P = self._probs(self.A, w)
        U, c = self._split(u)
        Z = self.A @ U + c
        Q = P * (Z - (P * Z).sum(1, keepdims=True))  # d softmax . Z
        G = sx[:, None] * Q / len(self.A)
        return np.concatenate([(self.A.T @ G).ravel(), G.sum(0)]) + self.mu * u

    def exact(self, x, y):
        from scipy.optimize import minimize
        from scipy.sparse.linalg import LinearOperator, cg
        sx = _sig(x)
        res = minimize(self._lower, self._w, args=(sx,), jac=True, method="L-BFGS-B",
                       options={"gtol": 1e-9, "maxiter": 2000})
        w = self._w = res.x
        PV = self._probs(self.V, w)
        h = float(-(np.log(PV + 1e-300) * self.TV).sum(1).mean())
        GV = (PV - self.TV) / len(self.V)
        gF = np.concatenate([(self.V.T @ GV).ravel(), GV.sum(0)])
        op = LinearOperator((650, 650), matvec=lambda u: self._hvp(w, sx, u))
        v, _ = cg(op, gF, rtol=1e-10, maxiter=500)
        # d/dx_i of <grad_w f, v> = sigmoid'(x_i)/n * <grad_w CE_i, v>
        P = self._probs(self.A, w)
        Vw, vb = self._split(v)
        dl = ((P - self.T) * (self.A @ Vw + vb)).sum(1)
        grad = -(sx * (1 - sx)) * dl / len(self.A)
        W, b = self._split(np.asarray(y, float))
        err = float(np.mean(np.argmax(self.Xt @ W + b, 1) != self.lt))
        return h, grad @ grad, err


PROBLEMS = {"quadratic": Quadratic, "ijcnn1": Logistic, "cleaning": Cleaning}
#: iterations per method and problem size (full, tiny)
ITERS = {"stochastic": (2000, 20), "deterministic": (300, 4)}


def method_config(name: str):
    """(solver config, is stochastic)."""
    if name == "AID-CG":
        return {"gm_op": ["NGD"], "na_op": ["CG"], "lower_iters": 10,
                "CG": {"k": 10, "tolerance": 0.0}}, False
    if name == "RHG":
        return {"gm_op": ["NGD"], "na_op": ["RAD"], "lower_iters": 10}, False
    section = {"batch_size": BATCH}
    if name in ("StocBiO", "TTSA"):
        section["neumann_iters"] = 10
    return {"fo_op": [name], "lower_iters": 10 if name in ("StocBiO", "AmIGO") else 1,
            name: section}, True


def oracle_calls(name, cfg, n_low, n_up, record):
    """Per-example oracle calls of the iteration ``record`` (a stochastic solver counts
    them in ``record.info["calls"]``)."""
    calls = record.info.get("calls")
    if calls is not None:
        return calls["grad"] + calls["hvp"]
    K = cfg["lower_iters"]
    if name == "RHG":  # K gradients forward, K Hessian and cross products backward
        return 3 * K * n_low + n_up
    return K * n_low + (cfg["CG"]["k"] + 1) * n_low + n_up  # K gradients, k HVP, 1 cross


def run(problem, name: str, seed: int, tiny: bool, iters: int | None = None) -> dict:
    """One run: the curve of (time, calls, h, |grad h|^2, metric); ``iters`` overrides the
    number of iterations (the warm-up run that compiles the kernels)."""
    from jboat_core import Problem, import_jittor
    from jboat_core.testing.problems import Vector
    jt = import_jittor()
    cfg, stochastic = method_config(name)
    if stochastic:
        cfg[name]["seed"] = seed
    f, F = problem.objectives(jt)
    ll = problem.model(jt) if hasattr(problem, "model") else Vector(problem.y0)
    ul = Vector(problem.x0)
    rho, gamma = problem.lr
    prob = Problem(cfg, ll_objective=f, ul_objective=F, ll_model=ll, ul_model=ul,
                   ll_opt=jt.optim.SGD(list(ll.parameters()), rho),
                   ul_opt=jt.optim.SGD(list(ul.parameters()), gamma))
    lf, uf = ({k: jt.array(np.asarray(v, np.float32)) for k, v in d.items()}
              for d in problem.feeds())
    n_low, n_up = len(next(iter(lf.values()))), len(next(iter(uf.values())))
    iters = iters or ITERS["stochastic" if stochastic else "deterministic"][1 if tiny else 0]
    evals = sorted(set(np.unique(np.geomspace(1, iters, 20).astype(int)).tolist()))
    curve, elapsed, calls = [], 0.0, 0
    lower = lambda: np.concatenate([p.numpy().ravel() for p in ll.parameters()])  # noqa: E731
    h, g2, metric = problem.exact(problem.x0, lower())
    curve.append([0.0, 0, h, g2, metric])
    for t in range(iters):
        start = time.perf_counter()
        record = prob.run_iter(lf, uf, t)
        elapsed += time.perf_counter() - start
        calls += oracle_calls(name, cfg, n_low, n_up, record)
        if t + 1 in evals:
            h, g2, metric = problem.exact(ul.w.numpy().astype(float), lower())
            curve.append([elapsed, calls, h, g2, metric])
    return {"problem": problem.name, "method": name, "seed": seed, "curve": curve}


def bands(runs, column):
    """(x grid, median, q10, q90) of a column over the runs (against oracle calls)."""
    arr = np.array([[p[column] if p[column] is not None else np.nan for p in r["curve"]]
                    for r in runs], float)
    return np.median(arr, 0), np.quantile(arr, 0.1, 0), np.quantile(arr, 0.9, 0)


def table(results) -> str:
    lines = ["| problem | method | time (s) | oracle calls | h(x) final (median [q10, q90]) "
             "| \\|grad h\\|^2 final | test error |", "|---|---|---|---|---|---|---|"]
    for prob in PROBLEMS:
        for name in STOCHASTIC + DETERMINISTIC:
            runs = [r for r in results if r["problem"] == prob and r["method"] == name]
            if not runs:
                continue
            last = np.array([[r["curve"][-1][i] if r["curve"][-1][i] is not None else np.nan
                              for i in range(5)] for r in runs], float)
            med, lo, hi = np.median(last, 0), np.quantile(last, 0.1, 0), np.quantile(last, 0.9, 0)
            err = "" if np.isnan(med[4]) else f"{med[4]:.3f}"
            lines.append(f"| {prob} | {name} | {med[0]:.1f} | {med[1]:.3g} | {med[2]:.4f} "
                         f"[{lo[2]:.4f}, {hi[2]:.4f}] | {med[3]:.2e} | {err} |")
    return "\n".join(lines) + "\n"


def plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    probs = [p for p in PROBLEMS if any(r["problem"] == p for r in results)]
    fig, axes = plt.subplots(len(probs), 4, figsize=(18, 3.6 * len(probs)), squeeze=False)
    colors = dict(zip(STOCHASTIC + DETERMINISTIC, plt.cm.tab10.colors))
    for row, prob in zip(axes, probs):
        for name in STOCHASTIC + DETERMINISTIC:
            runs = [r for r in results if r["problem"] == prob and r["method"] == name]
            if not runs:
                continue
            for ax, (xcol, ycol) in zip(row, ((0, 2), (1, 2), (0, 3), (1, 3))):
                xs = np.median(np.array([[p[xcol] for p in r["curve"]] for r in runs]), 0)
                med, lo, hi = bands(runs, ycol)
                style = "--" if name in DETERMINISTIC else "-"
                ax.plot(xs, med, style, color=colors[name], label=name)
                ax.fill_between(xs, lo, hi, color=colors[name], alpha=0.2)
                ax.set_xscale("symlog" if xcol == 0 else "log")
                if ycol == 3:
                    ax.set_yscale("log")
                ax.set_xlabel("time (s)" if xcol == 0 else "oracle calls (per example)")
                ax.set_ylabel("h(x) = F(x, y*(x))" if ycol == 2 else "|grad h(x)|^2")
                ax.set_title(prob)
        row[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=("full", "tiny"), default="full")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--methods", default=",".join(STOCHASTIC + DETERMINISTIC))
    ap.add_argument("--out", default="", help="folder for the JSON, table and PNG "
                    "(default: benchmarks/results and docs)")
    ap.add_argument("--fresh", action="store_true", help="replace the results file instead "
                    "of merging (runs of problems not run now are kept by default)")
    args = ap.parse_args(argv)
    os.environ.setdefault("JBOAT_DEVICE", "cpu")
    tiny = args.size == "tiny"
    results = []
    for pname in args.problems.split(","):
        problem = PROBLEMS[pname](tiny)
        for name in args.methods.split(","):
            run(problem, name, 0, tiny, iters=2)  # compiles the kernels: not timed
            for seed in range(args.seeds):
                results.append(run(problem, name, seed, tiny))
                last = results[-1]["curve"][-1]
                print(f"{pname:9s} {name:8s} seed {seed}: {last[0]:.2f} s, h {last[2]:.4f}, "
                      f"|grad h|^2 {last[3]:.2e}", file=sys.stderr, flush=True)
    out = Path(args.out) if args.out else None
    json_path = (out or ROOT / "benchmarks" / "results") / "stochastic.json"
    md_path = (out or ROOT / "benchmarks" / "results") / "stochastic.md"
    png_path = (out or ROOT / "docs") / "stochastic.png"
    for p in (json_path, md_path, png_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    done = {r["problem"] for r in results}
    if json_path.exists() and not args.fresh:  # keep the other problems' runs
        old = json.loads(json_path.read_text())
        if old.get("size") == args.size:
            results = [r for r in old["runs"] if r["problem"] not in done] + results
    json_path.write_text(json.dumps({"size": args.size, "batch_size": BATCH,
                                     "runs": results}, indent=1))
    md_path.write_text(table(results))
    plot(results, png_path)
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

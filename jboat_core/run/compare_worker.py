"""One method of ``jboat compare``, in its own process:

    python -m jboat_core.run.compare_worker SPEC_JSON

``SPEC_JSON`` holds the task file, the method's solver keys, the iterations and the
reference settings; the result (one row of the comparison) goes to ``SPEC["result"]``.
Every failure becomes a row: ``failed`` (the method crashed), ``diverged`` (a NaN/Inf
stopped it) or ``not applicable`` (the task cannot take it: variables, missing runtime
objects, an invalid composition for these settings).
"""

from __future__ import annotations

import json
import resource
import statistics
import sys
import time
from pathlib import Path


def _solver(run_solver: dict, method: dict) -> dict:
    base = {k: v for k, v in run_solver.items() if k not in ("gm_op", "na_op", "fo_op", "preset")}
    return {**base, **{k: v for k, v in method.items() if v is not None}}


def _composition(cfg) -> str:
    """``NGD → PTT+RAD`` (dynamics, then the hyper-gradient chain) or ``VFO (first
    order)``."""
    if cfg.fo_op:
        return "+".join(cfg.fo_op) + " (first order)"
    return "+".join(cfg.gm_op) + " → " + "+".join(cfg.na_op)


def _rss_mb() -> float:
    """This process's resident set now (VmRSS, MB); Jittor allocates outside Python's
    heap, so the resident set is what it holds. Where /proc is missing: the peak so far."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _vec(values):
    import numpy as np
    return np.concatenate([v.numpy().astype(np.float64).ravel() for v in values])


#: Settings of the reference's operators: converged linear solves.
REFERENCE_SECTIONS = {"CG": {"k": 200, "tolerance": 1e-10}, "NS": {"k": 500}}


def _reference(problem, run, task, feeds, it: int, steps: int,
               chain: list) -> tuple[float, float]:
    """(cosine, relative error) of ``problem``'s hyper-gradient at outer iteration ``it``
    (the one after the run: schedules such as PGDO's penalty growth apply) against the
    reference at the same upper point: the lower level solved by warm-started NGD (chunks of 50 steps,
    until the lower loss changes by less than 1e-8 relatively, at most ``steps``), then
    ``chain`` (CG to convergence by default)."""
    import numpy as np

    from ..solver.problem import Problem

    g = _vec(problem.evaluate(*feeds, it)["hyper_gradients"])
    chain = [chain] if isinstance(chain, str) else list(chain)
    sections = {n: s for n, s in REFERENCE_SECTIONS.items() if n in chain}
    ref = Problem({"gm_op": ["NGD"], "na_op": chain, "lower_iters": 50,
                   "copy_last_param": True, "return_grad": True, **sections},
                  ll_objective=task.ll_objective, ul_objective=task.ul_objective,
                  ll_model=task.ll_model, ul_model=task.ul_model, ll_var=problem.ll_var,
                  ul_var=problem.ul_var,
                  ll_opt=run.optim.lower.build(problem.ll_var),
                  ul_opt=run.optim.upper.build(problem.ul_var), gda_loss=task.gda_loss)
    last, rec = None, None
    for _ in range(max(1, steps // 50)):
        rec = ref.run_iter(*feeds, 0)
        loss = rec["lower_loss"]
        if last is not None and abs(loss - last) <= 1e-8 * max(abs(last), 1e-12):
            break
        last = loss
    r = _vec(rec["hyper_gradients"])
    cos = float(g @ r / max(np.linalg.norm(g) * np.linalg.norm(r), 1e-30))
    return cos, float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-30))


def run(spec: dict) -> dict:
    from ..plugins.config import parse_solver_config
    from ..errors import ConfigError, DivergedError, JboatError, OperatorRuntimeError
    from .task import load_run_config, load_task

    row = {"method": spec["method"], "status": "ok"}
    run_cfg, _ = load_run_config(spec["task"])
    try:
        cfg = parse_solver_config(_solver(run_cfg.solver, spec["config"]))
    except ConfigError as exc:
        return {**row, "status": "not applicable", "reason": " ".join(str(exc).split())}
    row["composition"] = _composition(cfg)
    task = load_task(run_cfg, Path(spec["task"]).parent)
    try:
        problem = task.problem(cfg, run_cfg.optim)
    except JboatError as exc:
        return {**row, "status": "not applicable", "reason": " ".join(str(exc).split())}
    baseline = _rss_mb()
    times = []
    try:
        for it in range(int(spec["iterations"])):
            feeds = task.feeds(it)
            t0 = time.perf_counter()
            problem.run_iter(*feeds, it)
            times.append(time.perf_counter() - t0)
    except OperatorRuntimeError as exc:
        status = "diverged" if isinstance(exc, DivergedError) else "failed"
        return {**row, "status": status, "reason": f"{exc} (after {len(times)} iterations)"}
    row.update(first_iter_s=times[0], ms_per_iter=1e3 * statistics.median(times[1:]),
               upper_loss=problem.history[-1]["upper_loss"], metrics=task.evaluate())
    row["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    row["mem_mb"] = row["peak_mb"] - baseline  # what the iterations took (kernels included)
    if problem.parallel.world == 1 and spec.get("reference_chain"):
        try:
            row["cosine"], row["rel_err"] = _reference(
                problem, run_cfg, task, task.feeds(len(times)), len(times),
                int(spec["reference_steps"]), spec["reference_chain"])
        except JboatError as exc:
            row["reason"] = f"no reference: {' '.join(str(exc).split())[:200]}"
    return row


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    try:
        row = run(spec)
    except Exception as exc:  # noqa: BLE001 - the row says why
        row = {"method": spec.get("method"), "status": "failed",
               "reason": f"{type(exc).__name__}: {' '.join(str(exc).split())[:300]}"}
    from .metrics import write_metrics
    write_metrics(Path(spec["result"]), row)
    return 0


if __name__ == "__main__":
    sys.exit(main())

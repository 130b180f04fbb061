"""``jboat compare TASK.toml``: run several methods on the user's own task, each in its own
process, and report time, memory, the task's metrics and agreement with a reference.

Methods: a preset name (``BDA``), operators joined by ``+`` (``PTT+RAD``, ``GDA+NGD+CG``,
``VFO``: each goes to ``gm_op``, ``na_op`` or ``fo_op`` by its kind; NGD is the default
dynamics), either followed by ``@S`` for ``checkpoint_every = S`` (``RAD@sqrt``,
``RAD@10``: checkpointed reverse mode), ``presets`` (every registered preset) or, by default, every valid composition
the registered operators' metadata allow (``compositions``). Each method runs
``--iterations`` outer iterations from the task's seed with the task file's settings (its
``[solver]`` minus the composition), in a fresh process (``jboat_core.run.compare_worker``);
a method that crashes, diverges or does not apply to the task becomes a row saying why.

Reported per method: time per outer iteration after the first (the first, with Jittor's
compilation, apart), peak memory of its process (``peak_mb``: its high-water resident set;
``mem_mb``: that peak minus the resident set once the task and the method's problem were
built, i.e. what the method's iterations took: the trajectory of an unrolled chain, less
with ``METHOD@S`` = ``checkpoint_every = S``), the task's metrics and final upper loss,
and the cosine and relative error of its hyper-gradient against a reference at the same
point (default: the lower level solved by up to ``--reference-steps`` warm-started NGD
steps until its loss settles, then CG to convergence; ``--reference-chain`` changes the
chain). Outputs in ``--out``: ``compare.json``, ``compare.md`` and ``compare.png``
(the task's metric against time per iteration, one labelled point per method). This
process never imports Jittor.

Input is checked before any method runs: ``--methods`` must name at least one method,
``--reference-chain`` be a hyper-gradient chain after NGD (or ``''``); ``--metric`` must
be one of the task's metrics (checked with the first method that reports them). Each
worker's output goes to a file and the worker process itself is waited for, so a process
the task starts and leaves running never holds the comparison until ``--timeout``.

Each worker runs in its own process group, in a temporary folder; however the comparison
stops (a timeout, an exception, Ctrl-C, SIGTERM or SIGHUP: these raise
``jboat_core.platform.signals.Terminated`` here), the whole group is killed and the folder removed.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import math
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from ..errors import ChainError, ConfigError, UnknownOperatorError
from ..plugins.registry import Registry, get_registry

ROW_KEYS = ("method", "composition", "status", "ms_per_iter", "first_iter_s", "peak_mb",
            "mem_mb", "metrics", "upper_loss", "cosine", "rel_err", "reason")


def _checkpointing(spec: str) -> tuple[str, dict]:
    """``METHOD@S`` -> (METHOD, {"checkpoint_every": S}) with S an int >= 0 or ``sqrt``
    (checkpointed reverse mode, ``jboat show-op RAD``); no ``@``: (spec, {})."""
    if "@" not in spec:
        return spec, {}
    base, _, every = spec.rpartition("@")
    every = every.strip()
    if every == "sqrt":
        return base.strip(), {"checkpoint_every": "sqrt"}
    if every.isdigit():
        return base.strip(), {"checkpoint_every": int(every)}
    raise ConfigError([f"--methods: {spec!r}: after '@' give checkpoint_every, a segment "
                       f"length >= 0 or 'sqrt' (e.g. RAD@sqrt, PTT+RAD@10), not {every!r}"])


def method_config(spec: str, registry: Registry) -> dict:
    """The solver keys of one method spec (``ConfigError`` if it names nothing known).
    ``SPEC@S`` adds ``checkpoint_every = S`` (``RAD@sqrt``, ``BDA@10``)."""
    spec, extra = _checkpointing(spec.strip())
    if extra:
        return {**method_config(spec, registry), **extra}
    if registry.get_preset(spec) is not None:
        return {"preset": registry.get_preset(spec).name}
    kinds = {"dynamics": [], "hypergradient": [], "first_order": []}
    for name in [n for n in spec.split("+") if n.strip()]:
        try:
            rec = registry.get(name.strip())
        except UnknownOperatorError:
            raise ConfigError([f"--methods: {spec!r}: {name.strip()!r} is neither a preset "
                               f"({', '.join(registry.preset_names())}) nor an operator "
                               f"({', '.join(registry.names())})"]) from None
        kinds[rec.kind].append(rec.name)
    if kinds["first_order"]:
        return {"fo_op": kinds["first_order"], "gm_op": kinds["dynamics"] or None,
                "na_op": kinds["hypergradient"] or None}
    return {"gm_op": kinds["dynamics"] or ["NGD"], "na_op": kinds["hypergradient"]}


def compositions(registry: Registry, max_len: int = 3) -> list[str]:
    """Every valid composition of the registered operators (chains of up to ``max_len``
    operators per kind), as method specs: validity from the operators' metadata only."""
    from ..plugins.config import parse_solver_config

    out = []
    dyn, hg = registry.names("dynamics"), registry.names("hypergradient")
    subsets = lambda xs: (list(c) for n in range(1, max_len + 1)  # noqa: E731
                          for c in itertools.combinations(xs, n))
    for g in subsets(dyn):
        for h in subsets(hg):
            try:
                cfg = parse_solver_config({"gm_op": g, "na_op": h}, registry)
            except ConfigError:
                continue
            out.append("+".join(cfg.gm_op + cfg.na_op))
    return out + registry.names("first_order")


def resolve_methods(methods: str | None, registry: Registry) -> list[str]:
    """The method specs of ``--methods`` (default, None: every valid composition);
    ``ConfigError`` when the text names no method (``",,,"``, blanks)."""
    if methods is None:
        return compositions(registry)
    out = []
    for item in [m.strip() for m in methods.split(",") if m.strip()]:
        out += registry.preset_names() if item.lower() == "presets" else [item]
    if not out:
        raise ConfigError([f"--methods: {methods!r} names no method; give comma-separated "
                           "presets or operator chains (e.g. BDA,PTT+RAD,VFO), or leave "
                           "--methods out for every valid composition"])
    return out


def reference_names(chain: str | None, registry: Registry) -> list[str]:
    """The operators of ``--reference-chain`` (``[]`` for none: ``''``), checked to be a
    valid hyper-gradient chain after NGD; ``ConfigError`` (one line) otherwise."""
    from ..plugins.config import parse_solver_config

    if chain is None or not chain.strip():
        return []
    names = [n.strip() for n in chain.replace("+", " ").replace(",", " ").split()]
    try:
        cfg = parse_solver_config({"gm_op": ["NGD"], "na_op": names}, registry)
    except (ConfigError, ChainError, UnknownOperatorError) as exc:
        why = " ".join(str(exc).split())
        raise ConfigError([f"--reference-chain: {chain!r} is not a hyper-gradient chain "
                           f"({why[:300]}); give one such as CG, NS or PTT+RAD, or '' for "
                           "no reference"]) from None
    return list(cfg.na_op)


@contextlib.contextmanager
def _children_may_die():
    """Default SIGCHLD handling while a worker runs: Jittor, if this process imported it,
    installs a handler that ends the parent when a child dies of a signal (meant for its
    data-loader workers), and a timed-out worker is killed."""
    try:
        previous = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    except ValueError:  # not the main thread: leave the handler alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, previous)


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill a worker and everything it started (its own process group), then reap it."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(Exception):
        proc.wait(timeout=30)


def _run_method(spec: dict, timeout: float) -> dict:
    """Run one method's worker and wait for the worker process itself (its output goes
    to files, not pipes: a process the task started and left running, holding them
    open, does not keep the comparison waiting)."""
    with tempfile.TemporaryDirectory(prefix="jboat-compare-") as tmp, _children_may_die():
        result, log = Path(tmp) / "result.json", Path(tmp) / "worker.log"
        spec = {**spec, "result": str(result)}
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "jboat_core.run.compare_worker",
                                     json.dumps(spec)], stdout=out, stderr=out,
                                    stdin=subprocess.DEVNULL, env={**os.environ},
                                    start_new_session=True)  # its own group: killed as one
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return {"status": "failed", "reason": f"timed out after {timeout:g} s"}
        except BaseException:  # Ctrl-C, SIGTERM/SIGHUP (Terminated), anything: no orphan
            _kill_group(proc)
            raise
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever the worker left running
        if result.exists():
            return json.loads(result.read_text())
        last = _tail(log).strip().splitlines()[-1:] or ["no output"]
        return {"status": "failed", "reason": f"exit code {proc.returncode}: {last[0][:300]}"}


def _tail(path: Path, size: int = 1 << 16) -> str:
    """The end of a worker's output (text, undecodable bytes replaced)."""
    with open(path, "rb") as fh:
        fh.seek(max(0, os.fstat(fh.fileno()).st_size - size))
        return fh.read().decode("utf-8", "replace")


def run_compare(config_path, out, *, methods: str | None = None, iterations: int = 30,
                reference_steps: int = 2000, reference_chain: str = "CG",
                metric: str | None = None, progress: bool | None = None,
                overwrite: bool = False, timeout: float = 1800,
                registry: Registry | None = None) -> dict:
    """Compare methods on a task file (see the module docstring); returns the report."""
    from ..platform.signals import terminate_as_exception

    config_path, out = Path(config_path).resolve(), Path(out).absolute()
    if iterations < 2:
        raise ConfigError([f"--iterations: {iterations} must be >= 2 (the first one, with "
                           "Jittor's compilation, is reported apart)"])
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise ConfigError([f"--timeout: {timeout!r} must be a finite number of seconds > 0"])
    with terminate_as_exception():
        return _compare(config_path, out, methods, iterations, reference_steps,
                        reference_chain, metric, progress, overwrite, timeout, registry)


def _compare(config_path, out, methods, iterations, reference_steps, reference_chain,
             metric, progress, overwrite, timeout, registry) -> dict:
    from tqdm import tqdm

    from .metrics import write_metrics
    from .outdir import OutputFolder, check_out_path
    from ..platform.safeio import write_atomic
    from .task import load_run_config

    reg = registry or get_registry()
    check_out_path(out)
    run, _ = load_run_config(config_path)
    specs = resolve_methods(methods, reg)
    reference = reference_names(reference_chain, reg)
    if metric is not None and not metric.strip():
        raise ConfigError(["--metric: empty; name one of the task's metrics, or leave "
                           "--metric out for its first"])
    rows = []
    with OutputFolder(out, overwrite=overwrite, outputs=("compare.json", "compare.png",
                                                         "compare.md")) as folder:
        bar = tqdm(specs, desc="jboat compare", unit="method", file=sys.stderr,
                   disable=(not progress) if progress is not None else None)
        for spec in bar:
            bar.set_postfix_str(spec)
            row = {"method": spec}
            try:
                cfg = method_config(spec, reg)
            except ConfigError as exc:
                rows.append({**row, "status": "failed", "reason": str(exc)})
                continue
            row.update(_run_method({"task": str(config_path), "method": spec, "config": cfg,
                                    "iterations": iterations, "metric": metric,
                                    "reference_steps": reference_steps,
                                    "reference_chain": reference}, timeout))
            row["method"] = spec
            _check_metric(metric, row)
            rows.append(row)
        bar.close()
        report = {"task": str(config_path), "iterations": iterations,
                  "reference": {"chain": reference_chain, "max_lower_steps": reference_steps},
                  "machine": _machine(), "rows": [{k: r.get(k) for k in ROW_KEYS} for r in rows]}
        write_metrics(folder.path / "compare.json", report)
        write_atomic(folder.path / "compare.md", (table(report, metric) + "\n").encode())
        picture(report, folder.path / "compare.png", metric)
    return report


def _check_metric(metric: str | None, row: dict) -> None:
    """Stop at the first method that reports the task's metrics when ``--metric`` is not
    one of them (``ConfigError``, naming the task's metrics)."""
    found = row.get("metrics")
    if metric is None or not isinstance(found, dict) or metric in found:
        return
    raise ConfigError([f"--metric: {metric!r} is not a metric of this task (its evaluate() "
                       f"gives {', '.join(map(str, found)) or 'none'}); choose one of them, "
                       "or leave --metric out for the first"])


def _machine() -> dict:
    import platform
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": platform.python_version()}


def _fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def primary_metric(report: dict, metric: str | None = None) -> str | None:
    """The metric to rank and draw: ``metric``, else the first numeric one of the rows."""
    if metric:
        return metric
    for r in report["rows"]:
        for k, v in (r.get("metrics") or {}).items():
            if isinstance(v, (int, float)):
                return k
    return None


def table(report: dict, metric: str | None = None) -> str:
    """The report as a Markdown table (one row per method)."""
    key = primary_metric(report, metric)
    head = ["method", "composition", "ms / iter", "first iter (s)", "peak MB",
            "MB above start", key or "metric", "upper loss", "cosine", "rel. err", "status"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in report["rows"]:
        m = (r.get("metrics") or {}).get(key) if key else None
        status = r["status"] if r["status"] == "ok" else f"{r['status']}: {r.get('reason', '')}"
        lines.append("| " + " | ".join([
            r["method"], r.get("composition") or "-", _fmt(r.get("ms_per_iter"), ".2f"),
            _fmt(r.get("first_iter_s"), ".2f"), _fmt(r.get("peak_mb"), ".0f"),
            _fmt(r.get("mem_mb"), ".0f"), _fmt(m, ".4g") if isinstance(m, (int, float)) else "-",
            _fmt(r.get("upper_loss"), ".4g"), _fmt(r.get("cosine"), ".4f"),
            _fmt(r.get("rel_err"), ".2g"), status.replace("|", "/")[:160]]) + " |")
    return "\n".join(lines)


def picture(report: dict, path: Path, metric: str | None = None) -> None:
    """The task's metric (or the upper loss) against time per iteration, one labelled
    point per method that ran."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker as ticker

    key = primary_metric(report, metric)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points: list = []  # [x, y, names]: methods on one spot share a label
    for r in report["rows"]:
        if r["status"] != "ok" or r.get("ms_per_iter") is None:
            continue
        y = (r.get("metrics") or {}).get(key) if key else r.get("upper_loss")
        if not isinstance(y, (int, float)):
            y = r.get("upper_loss")
        x = r["ms_per_iter"]
        near = next((p for p in points if abs(p[0] - x) <= 0.05 * max(p[0], x)
                     and abs(p[1] - y) <= 1e-3 * max(abs(p[1]), abs(y), 1e-12)), None)
        if near is None:
            points.append([x, y, [r["method"]]])
        else:
            near[2].append(r["method"])
        ax.scatter([x], [y])
    for x, y, names in points:
        ax.annotate(", ".join(names), (x, y), fontsize=8, xytext=(3, 3),
                    textcoords="offset points")
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.FormatStrFormatter("%g"))
    ax.set_xlabel("time per outer iteration (ms, log scale)")
    ax.set_ylabel(key or "final upper loss")
    ax.set_title(f"jboat compare: {Path(report['task']).name}, {report['iterations']} iterations")
    fig.tight_layout()
    from .metrics import save_png
    save_png(fig, path, 110)

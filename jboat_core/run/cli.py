"""The ``jboat`` command line. Listing, describing and validating never import Jittor.

Exit codes (also in ``jboat --help``): see :data:`EXIT_CODES`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path

from ..errors import ChainError, ConfigError, JboatError, PluginError, UnknownOperatorError
from ..contract.components import COMPONENTS
from ..contract.kinds import KINDS
from ..contract.metadata import describe_config
from ..plugins.registry import OperatorRecord, PluginFailure, Registry, get_registry
from ..platform.signals import Terminated
from .task import MAX_ITERATIONS


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _readable(records: list[OperatorRecord]) -> tuple[list[tuple[dict, OperatorRecord]],
                                                      list[PluginFailure]]:
    """Each record's metadata read once (``as_dict``); a record whose class raises when
    read becomes a failure of its plugin, as if it had failed to load."""
    rows, failures = [], []
    for r in records:
        try:
            d = r.as_dict()
            rows.append(({k: v if isinstance(v, (bool, int, list)) or v is None else str(v)
                          for k, v in d.items()}, r))
        except Exception as exc:  # noqa: BLE001 - a plugin's class, reported
            failures.append(PluginFailure(r.origin, "reading its operator's metadata raised "
                                          f"{type(exc).__name__}: {exc}"))
    return rows, failures


def _component_rows(reg: Registry, kind: str | None) -> list[dict]:
    """Components (linear solvers, prox maps) as dicts; ``kind`` an operator kind: none."""
    if kind is not None and kind not in COMPONENTS:
        return []
    return [r.as_dict() for r in reg.component_records(kind)]


def _print_components(rows: list[dict]) -> None:
    table = [["NAME", "KIND", "DISTRIBUTION", "SUMMARY"]]
    table += [[r["name"], r["kind"], f"{r['distribution']} {r['version']}", r["summary"]]
              for r in rows]
    print("\ncomponents (chosen by name in an operator's section: CG.linear_solver, "
          "PGD.prox; `jboat show-op NAME --kind KIND`):")
    print(_table(table))


def cmd_list_ops(args, reg: Registry) -> int:
    components = _component_rows(reg, args.kind)
    if args.kind in COMPONENTS:
        if args.json:
            print(json.dumps(components, indent=2))
        else:
            _print_components(components)
        return 0
    records, unreadable = _readable(reg.records(args.kind))
    failures = [*reg.failures, *unreadable]
    if args.json:
        out = [d for d, _ in records]
        if args.verbose:
            out = {"operators": out, "components": components,
                   "failures": [f.as_dict() for f in failures]}
        print(json.dumps(out, indent=2))
        return 0
    head = ["NAME", "KIND", "STAGE", "ROLE", "DISTRIBUTION", "SUMMARY"]
    if args.verbose:
        head.insert(5, "FROM")
    rows = [head]
    for r, rec in records:
        row = [r["name"], r["kind"], r["stage"], r["role"],
               f"{r['distribution']} {r['version']}", r["summary"]]
        if args.verbose:
            row.insert(5, f"{rec.origin.entry_point} = {rec.origin.value}")
        rows.append(row)
    print(_table(rows) if records else "no operators found (is jboat installed?)")
    if components:
        _print_components(components)
    notes = [(r["name"], rec.note) for r, rec in records if rec.note]
    if args.verbose and notes:
        print()
        for name, note in notes:
            print(f"note: {name}: {note}")
    if failures:
        print(f"\n{len(failures)} plugin(s) failed to load" + (
            ":" if args.verbose else " (-v shows why in full):"))
        for f in failures:
            print(f"  {f.origin}: {f.error}")
            if args.verbose and f.detail:
                print("    " + f.detail.rstrip().replace("\n", "\n    "))
    return 0


def _chain_rules(rec: OperatorRecord, reg: Registry) -> list[str]:
    c = rec.cls
    rules = {
        "modifier": "must be followed by another operator of its chain",
        "terminal": "must be the last operator of its chain",
        "either": f"may end the chain or be followed by a {'/'.join(c.followed_by)} operator",
    }
    if not KINDS[c.kind].chain:
        lines = [f"runs alone: a {KINDS[c.kind].label} replaces gm_op and na_op "
                 f"(choose it with {KINDS[c.kind].config_key})"]
    else:
        lines = [f"role {c.role}: {rules[c.role]}",
                 f"runs in stage {c.stage!r} (order {c.order}); "
                 f"default order: {_order_text(c.kind, reg)}"]
    if c.requires_any:
        lines.append(f"requires one of: {', '.join(c.requires_any)}")
    if c.conflicts:
        lines.append(f"cannot be combined with: {', '.join(c.conflicts)}")
    lines.append("keeps the unrolled trajectory (memory O(K))" if c.needs_trajectory
                 else "does not need the unrolled trajectory")
    if c.needs_trajectory:
        loops = [n for n in reg.names("dynamics")
                 if getattr(reg.get(n).cls, "supports_checkpointing", False)]
        lines.append(CHECKPOINT_TEXT.format(loops=", ".join(loops) or "none registered"))
    if c.keeps_initialisation:
        lines.append("differentiates with respect to y_0: no warm start (copy_last_param off)")
    if c.requires_runtime:
        lines.append(f"needs in the solver config: {', '.join(c.requires_runtime)}")
    return lines


#: What show-op says for every operator that keeps the trajectory (``needs_trajectory``).
CHECKPOINT_TEXT = (
    "solver key checkpoint_every = s (an int, or \"sqrt\" for s = ceil(sqrt(K)); 0, the "
    "default: the whole trajectory): checkpointed reverse mode, the same hyper-gradient "
    "(float32 rounding) in memory O(K/s + s) instead of O(K), for about one more forward "
    "pass of the inner loop (each segment is recomputed in the reverse pass); needs an inner "
    "loop that declares supports_checkpointing ({loops}); compare with "
    "`jboat compare TASK --methods RAD,RAD@sqrt`. "
    "Not to be confused with `jboat run --checkpoint-every` (saving the run to disk)")


def _order_text(kind: str, reg: Registry) -> str:
    from ..plugins.ordering import default_gradient_order
    return " -> ".join("[" + ", ".join(g) + "]" for g in default_gradient_order(kind, reg))


def _show_component(args, reg: Registry, kind: str) -> int:
    comp = reg.component(kind, args.name)
    rec = reg.components[kind][comp.name]
    d = rec.as_dict()
    if args.json:
        print(json.dumps(d, indent=2, default=str))
        return 0
    print(f"{comp.name} — {comp.summary}")
    print(f"  kind:      {COMPONENTS[kind].label}")
    print(f"  from:      {rec.origin.distribution} {rec.origin.version} "
          f"(entry point {rec.origin.entry_point})")
    if comp.formula:
        print(f"  formula:   {comp.formula}")
    print(f"  reference: {comp.reference}")
    print(f"  function:  {d['function']}")
    if kind == "linear_solver":
        print("  system:    " + ("symmetric only (refused on a system declared "
                                 "non-symmetric)" if comp.requires_symmetric else "any square")
              + ("; uses A^T (rmatvec)" if comp.uses_transpose else ""))
    else:
        print("  type:      " + ("projection (no strength)" if comp.projection
                                 else "proximal operator of t g"))
        print("  options:" + ("" if comp.options else " (none)"))
        for key, (default, desc) in comp.options.items():
            print(f"    {key} (default {default!r}): {desc}")
    return 0


def cmd_show_op(args, reg: Registry) -> int:
    kind = getattr(args, "kind", None)
    if kind in COMPONENTS:
        return _show_component(args, reg, kind)
    if kind is None and str(args.name).upper() not in reg.operators:
        found = [k for k in COMPONENTS if str(args.name).lower() in reg.components[k]]
        if found:
            return _show_component(args, reg, found[0])
    rec = reg.get(args.name)
    c = rec.cls
    fields = [{"name": n, "type": t, "default": d, "description": desc}
              for n, t, d, desc in describe_config(c.config_model)]
    if args.json:
        print(json.dumps({**rec.as_dict(), "formula": c.formula, "config": fields,
                          "chain_rules": _chain_rules(rec, reg)}, indent=2, default=str))
        return 0
    print(f"{c.name} — {c.summary}")
    print(f"  kind:      {c.kind}, stage {c.stage!r}, role {c.role!r}")
    print(f"  from:      {rec.origin.distribution} {rec.origin.version} "
          f"(entry point {rec.origin.entry_point} = {rec.origin.value})")
    if c.formula:
        print(f"  formula:   {c.formula}")
    print(f"  reference: {c.reference}")
    print(f"  config [{c.name}]:" + ("" if fields else " (no settings)"))
    for f in fields:
        print(f"    {f['name']} ({f['type']}, default {f['default']!r}): {f['description']}")
    print("  chain rules:")
    for line in _chain_rules(rec, reg):
        print(f"    - {line}")
    return 0


def _composition(cfg: dict) -> str:
    parts = [("fo_op", cfg.get("fo_op")), ("gm_op", cfg.get("gm_op")), ("na_op", cfg.get("na_op"))]
    return "  ".join(f"{k} {'+'.join(v)}" for k, v in parts if v)


def cmd_list_presets(args, reg: Registry) -> int:
    records = reg.preset_records()
    if args.json:
        print(json.dumps([r.as_dict() for r in records], indent=2))
        return 0
    rows = [["NAME", "COMPOSITION", "DISTRIBUTION", "SUMMARY"]]
    rows += [[r.name, _composition(dict(r.preset.config)),
              f"{r.origin.distribution} {r.origin.version}", r.preset.summary] for r in records]
    print(_table(rows) if records else "no presets found")
    return 0


def cmd_show_preset(args, reg: Registry) -> int:
    from ..plugins.config import parse_solver_config
    rec = reg.get_preset(args.name)
    if rec is None:
        raise UnknownOperatorError(f"unknown preset {args.name!r}; valid choices: "
                                   f"{', '.join(reg.preset_names())}")
    p = rec.preset
    cfg = parse_solver_config({"preset": p.name}, reg)
    expanded = {"gm_op": cfg.gm_op, "na_op": cfg.na_op, "fo_op": cfg.fo_op,
                "lower_iters": cfg.lower_iters,
                **{k: v for k, v in dict(p.config).items() if isinstance(v, dict)}}
    if args.json:
        print(json.dumps({**rec.as_dict(), "expanded": expanded}, indent=2, default=str))
        return 0
    print(f"{p.name} — {p.summary}")
    print(f"  from:      {rec.origin.distribution} {rec.origin.version}")
    print(f"  reference: {p.reference}")
    print(f"  config:    {json.dumps(dict(p.config))}")
    print(f"  runs:      {_composition(expanded)}, lower_iters {cfg.lower_iters}")
    if p.notes:
        print(f"  needs:     {p.notes}")
    print(f'  use:       preset = "{p.name}" in [solver] (other keys override it)')
    return 0


def cmd_validate(args, reg: Registry) -> int:
    from ..plugins.config import load_solver_config, read_config_file
    from .task import is_task_file, load_run_config
    if is_task_file(read_config_file(args.config)):
        run, cfg = load_run_config(args.config)
        what = (f"task file: module {run.task.module}, {run.task.iterations} iterations, "
                f"optimizers {run.optim.lower.type} / {run.optim.upper.type}; ")
    else:
        cfg, what = load_solver_config(args.config, reg), ""
    chain = (f"fo_op = {cfg.fo_op}" if cfg.fo_op else
             f"gm_op = {cfg.gm_op}, na_op = {cfg.na_op} (execution order)")
    print(f"{args.config}: valid {what}{chain}, lower_iters = {cfg.lower_iters}")
    return 0


def cmd_run(args, reg: Registry) -> int:
    from .runner import run_task
    metrics = run_task(args.config, args.out, checkpoint_every=args.checkpoint_every,
                       resume=args.resume, overwrite=args.overwrite,
                       iterations=args.iterations, mpi=args.mpi,
                       mpi_timeout=args.mpi_timeout or None,
                       allow_changed_module=args.allow_changed_module)
    if "final" not in metrics:  # a rank > 0 of an MPI run: rank 0 reports
        return 0
    print(f"final: {_metrics_line(metrics['final'])}")
    if metrics.get("baseline"):
        print(f"baseline: {_metrics_line(metrics['baseline'])}")
    print(f"wrote {args.out}/metrics.json and {args.out}/loss_curve.png")
    return 0


def _metrics_line(metrics: dict) -> str:
    return ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in metrics.items())


def cmd_compare(args, reg: Registry) -> int:
    from .compare import run_compare, table
    report = run_compare(args.config, args.out, methods=args.methods,
                         iterations=args.iterations, reference_steps=args.reference_steps,
                         reference_chain=args.reference_chain or None, metric=args.metric,
                         overwrite=args.overwrite, timeout=args.timeout, registry=reg)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(table(report, args.metric))
        print(f"\nwrote {args.out}/compare.json, compare.md and compare.png")
    return 0


def _plugin_families() -> list[str]:
    from .scaffold import families
    return families()


def cmd_new_plugin(args, reg: Registry) -> int:
    from .scaffold import add_to, write_plugin
    if args.add_to:
        root, files = Path(args.add_to), add_to(args.name, args.kind, args.add_to,
                                                 registry=reg)
    else:
        root, files = write_plugin(args.name, args.kind, args.out, registry=reg)
    for path in files:
        print(f"wrote {path}")
    print(f"{root}: pip install -e {root} (then `jboat list-ops` shows {args.name}); "
          f"cd {root} && python -m pytest runs the conformance kit on it")
    return 0


def cmd_doctor(args, reg: Registry) -> int:
    from .doctor import format_report, report
    facts = report(import_jittor=not args.no_import)
    print(json.dumps(facts, indent=2) if args.json else format_report(facts))
    return 1 if facts["problems"] else 0


def cmd_setup_onednn(args, reg: Registry) -> int:
    """Kept for scripts of earlier versions: jboat now sets oneDNN up by itself."""
    from pathlib import Path

    from ..platform.onednn import lay_out, mkl_folder, prepare
    if not args.lib:
        state = prepare()
        print(f"oneDNN: {'used' if state.used else 'not used'}: {state.reason} "
              "(jboat does this by itself before Jittor's import; see `jboat doctor`)")
        return 0 if state.used else 1
    lib, include = Path(args.lib), Path(args.include)
    if not lib.is_file() or not (include / "dnnl.h").is_file():
        print(f"jboat: error: {lib} or {include}/dnnl.h not found: install oneDNN first "
              "(pip install onednn-cpu-gomp onednn-devel-cpu-gomp, or libdnnl-dev)",
              file=sys.stderr)
        return 1
    folder = Path(args.cache_dir).expanduser() / "mkl" / mkl_folder().name
    lay_out(folder, lib, include)
    print(f"oneDNN linked into {folder}")
    return 0


def _version() -> str:
    from importlib import metadata

    def of(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:  # pragma: no cover - a checkout
            return "not installed"
    return (f"jboat {of('jboat')} (Jittor {of('jittor')}, Python "
            f"{sys.version.split()[0]}, {sys.prefix})")


#: What ``jboat`` exits with (``--help`` shows it; docs/cli.md explains it).
EXIT_CODES = (
    (0, "success (doctor: no problem found)"),
    (1, "an error: a failed run or task, a plugin or Jittor set-up error, a file that "
        "cannot be written (doctor: a problem found)"),
    (2, "bad usage or input: unknown option, invalid configuration, chain or operator name"),
    (130, "interrupted (Ctrl-C); metrics.json says \"interrupted\""),
    (141, "standard output closed early (e.g. piped into head): the rest is dropped quietly"),
    ("128+N", "ended by signal N (SIGTERM 143, SIGHUP 129); metrics.json says "
              "\"terminated\""),
)
EXIT_PIPE = 141


def _epilog() -> str:
    rows = "\n".join(f"  {str(code):>5}  {text}" for code, text in EXIT_CODES)
    return ("Jittor's own log lines are hidden; -v shows them. jboat decides CPU or CUDA "
            "by itself (`jboat doctor` says why); JBOAT_DEVICE=cpu|cuda forces it.\n\n"
            f"exit codes:\n{rows}")


def _count(minimum: int, maximum: int | None = None):
    """argparse type: an integer >= ``minimum`` (and <= ``maximum``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be >= {minimum}")
        if maximum is not None and value > maximum:
            raise argparse.ArgumentTypeError(f"{value} must be <= {maximum}")
        return value
    parse.__name__ = "integer"
    return parse


def _seconds(text: str) -> float:
    """argparse type: a finite, positive number of seconds."""
    import math
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of seconds > 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jboat", description="Hyper-gradient operators for "
                                     "bilevel optimization on Jittor, as plugins.",
                                     epilog=_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("-v", "--verbose", dest="jittor_log", action="store_true",
                        help="show Jittor's own log lines (hidden by default)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list-ops", help="list every operator found and the plugins that failed")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--verbose", "-v", action="store_true",
                   help="show entry points (and, with --json, failures)")
    p.add_argument("--kind", choices=[*KINDS, *COMPONENTS], help="only this kind (an "
                   "operator kind, or linear_solver / prox_map)")
    p.set_defaults(func=cmd_list_ops)
    p = sub.add_parser("new-plugin", help="write a new plugin distribution (API 2): package, "
                       "entry point, config model, operator, tests")
    p.add_argument("name", help="operator name (letters, digits, _), e.g. MyOp")
    p.add_argument("--kind", required=True, choices=_plugin_families(),
                   help="the template family: hypergradient (alias unrolled), implicit, "
                        "dynamics, first_order, stochastic, preset")
    p.add_argument("--out", default=".", help="folder to write the distribution in (default .)")
    p.add_argument("--add-to", metavar="DIR", help="add the operator (module, entry point, "
                   "test) to the distribution in DIR written before, instead")
    p.set_defaults(func=cmd_new_plugin)
    p = sub.add_parser("show-op", help="formula, config fields, reference and chain rules")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.add_argument("--kind", choices=list(COMPONENTS), help="describe the component of "
                   "this kind named NAME (e.g. `show-op cg --kind linear_solver`; without "
                   "it an operator of that name wins)")
    p.set_defaults(func=cmd_show_op)
    p = sub.add_parser("list-presets", help="the named presets (classical algorithms)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_list_presets)
    p = sub.add_parser("show-preset", help="a preset's composition, settings and paper")
    p.add_argument("name")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_show_preset)
    p = sub.add_parser("validate", help="validate a solver config or task file (TOML or JSON)")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("compare", help="run several methods on a task, each in its own "
                       "process: time, memory, metrics, agreement with a reference")
    p.add_argument("config", help="task file (TOML or JSON)")
    p.add_argument("--methods", help="comma-separated presets (BDA), operator chains "
                   "(PTT+RAD, GDA+NGD+CG, VFO) or 'presets', each optionally with @S for "
                   "checkpoint_every = S (RAD@sqrt, RAD@10); default: every valid composition")
    p.add_argument("--iterations", type=_count(2, MAX_ITERATIONS), default=30, metavar="N",
                   help="outer iterations per method (default 30)")
    p.add_argument("--out", default="runs/compare", help="output directory")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier comparison")
    p.add_argument("--metric", help="the task metric to report and draw (default: its first)")
    p.add_argument("--reference-chain", default="CG", metavar="CHAIN",
                   help="hyper-gradient chain of the reference (default CG; '' : none)")
    p.add_argument("--reference-steps", type=_count(1), default=2000, metavar="N",
                   help="most lower steps to solve the lower level for the reference")
    p.add_argument("--timeout", type=_seconds, default=1800, help="seconds per method")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    _jittor_log_option(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser("doctor", help="what Jittor runs with here: oneDNN (and why not), "
                       "MPI, CUDA, compiler, cache")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--no-import", action="store_true",
                   help="do not import Jittor (report only what is known before)")
    _jittor_log_option(p)
    p.set_defaults(func=cmd_doctor)
    p = sub.add_parser("setup-onednn", help="(kept for old scripts) jboat sets oneDNN up by "
                       "itself; with --lib, link another oneDNN (e.g. Debian's libdnnl-dev)")
    p.add_argument("--cache-dir", default="~/.cache/jittor", help="Jittor's cache folder")
    p.add_argument("--lib", help="path of a libdnnl.so to link instead of the wheel's")
    p.add_argument("--include", default="/usr/include", help="folder holding dnnl.h")
    p.set_defaults(func=cmd_setup_onednn)
    p = sub.add_parser("run", help="solve a task file end to end (metrics.json, loss_curve.png)")
    p.add_argument("config", help="task file (TOML or JSON) with [task], [optim], [solver]")
    p.add_argument("--out", default="runs/latest", help="output directory (default runs/latest)")
    p.add_argument("--checkpoint-every", type=_count(0), default=0, metavar="N",
                   help="save OUT/checkpoint.npz every N iterations (0: never)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true",
                      help="continue from OUT/checkpoint.npz")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace an earlier run in OUT")
    p.add_argument("--iterations", type=_count(1, MAX_ITERATIONS), default=None, metavar="N",
                   help="override [task] iterations")
    p.add_argument("--allow-changed-module", action="store_true",
                   help="with --resume: continue although the task module's source changed "
                        "since the checkpoint (refused otherwise)")
    p.add_argument("--mpi", action="store_true",
                   help="require a data-parallel run (mpirun -np N jboat run ... --mpi)")
    p.add_argument("--mpi-timeout", type=_count(0), default=600, metavar="S",
                   help="under MPI, end a process whose outer iteration takes longer than S "
                        "seconds (a peer died); 0: no limit (default 600)")
    _jittor_log_option(p)
    p.set_defaults(func=cmd_run)
    return parser


def _jittor_log_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("-v", "--verbose", dest="jittor_log_here", action="store_true",
                   help="show Jittor's own log lines (hidden by default)")


def _jittor_log(args) -> None:
    """Jittor's ``[i ...]``/``[w ...]`` lines: hidden unless -v (your log_silent wins)."""
    verbose = getattr(args, "jittor_log", False) or getattr(args, "jittor_log_here", False)
    os.environ.setdefault("log_silent", "0" if verbose else "1")


def main(argv: list[str] | None = None) -> int:
    """The command line. Run as the ``jboat`` program (``argv`` None), a command that
    leaves non-daemon threads of a task module running ends the process once its results
    are written, with a warning, instead of waiting for them forever; ``run`` exits with
    jboat's code whatever the task does at exit (``jboat_core.run.guard``); a closed pipe
    (``jboat list-ops | head -1``) ends quietly with ``EXIT_PIPE``."""
    args = build_parser().parse_args(argv)
    _jittor_log(args)

    def work() -> int:
        try:
            code = _dispatch(args)
            sys.stdout.flush()
        except BrokenPipeError:  # the reader has gone
            _drop_stdout()
            return EXIT_PIPE
        if argv is None:
            _exit_past_leftover_threads(code)
        return code

    if argv is None and args.command == "run":  # task code runs here: its exit is not ours
        from .guard import guarded
        return guarded(work)
    return work()


def _drop_stdout() -> None:
    """Point standard output at /dev/null so that nothing more (the interpreter's last
    flush included) raises on the closed pipe."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # a stream without a descriptor (tests)
        pass


def _exit_past_leftover_threads(code: int) -> None:
    import threading
    left = [t.name for t in threading.enumerate()
            if t is not threading.main_thread() and not t.daemon and t.is_alive()]
    if not left:
        return
    print(f"jboat: warning: {len(left)} non-daemon thread(s) left running ({', '.join(left)}"
          "), e.g. by the task module; exiting without waiting for them", file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _dispatch(args) -> int:
    try:
        return args.func(args, get_registry())
    except (ConfigError, ChainError, UnknownOperatorError) as exc:
        print(f"jboat: error: {exc}", file=sys.stderr)
        return 2
    except PluginError as exc:
        if os.environ.get("JBOAT_STRICT_PLUGINS", "") not in ("", "0"):
            traceback.print_exception(exc, file=sys.stderr)  # strict mode: the traceback
        print(f"jboat: error: {exc}", file=sys.stderr)
        return 1
    except JboatError as exc:
        print(f"jboat: error: {exc}", file=sys.stderr)
        if getattr(exc, "details", ""):  # a task module's own traceback, after the line
            print(exc.details, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jboat: interrupted", file=sys.stderr)
        return 130
    except Terminated as exc:
        print(f"jboat: terminated by {exc.name}" + (f"; {exc.note}" if exc.note else ""),
              file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

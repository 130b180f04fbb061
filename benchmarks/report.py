"""Results file (JSON) and the Markdown summary table."""

from __future__ import annotations

import json
import os
import platform
import statistics

KEY = ("framework", "problem", "size", "method", "K", "tag", "round")


def key(rec: dict) -> tuple:
    return tuple(rec.get(k, "") for k in KEY)


def machine() -> dict:
    """nproc, CPU model and load average of this machine."""
    model = ""
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh
                          if ln.startswith("model name")), "")
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = None
    return {"nproc": os.cpu_count(), "cpu": model, "loadavg": load,
            "python": platform.python_version(), "platform": platform.platform()}


def load(path: str) -> dict:
    if os.path.exists(path):
        with open(path) as fh:
            return json.load(fh)
    return {"runs": []}


def merge(doc: dict, records: list) -> dict:
    """Replace records with the same key, keep the others."""
    runs = {key(r): r for r in doc.get("runs", [])}
    for r in records:
        runs[key(r)] = r
    doc["runs"] = sorted(runs.values(), key=lambda r: tuple(str(x) for x in key(r)))
    return doc


def _f(v, fmt):
    return "-" if v is None else format(v, fmt)


def _acc(r):
    if r is None:
        return "-", "-"
    if not r.get("ok"):
        return "error", "error"
    if not r.get("finite", True):
        return "NaN", "NaN"
    return _f(r.get("cosine"), ".4f"), _f(r.get("rel_err"), ".1e")


def _rows(runs) -> list:
    """The (problem, size, chain) rows of ``runs``: by problem, small size first, chain."""
    return sorted({(r["problem"], r["size"], r["method"]) for r in runs},
                  key=lambda t: (t[0], t[1] != "small", t[2]))


def _start(head: str) -> list:
    """A Markdown table's header line and separator line."""
    return [head, "|" + "|".join(["---"] * (head.count("|") - 1)) + "|"]


def table(doc: dict, tag: str = "") -> str:
    """One row per (chain, problem, size): jboat, then JBOAT (boat-jit) and boat-torch."""
    runs = [r for r in doc.get("runs", []) if r.get("tag", "") == tag]
    by = {(r["framework"], r["problem"], r["size"], r["method"]): r for r in runs}
    rows = _rows(runs)
    lines = _start("| chain | problem | size | ms/hyper-iter | first call s | grads | HVPs "
                   "| floor | x floor | cosine | rel. err | peak MB K=10 | peak MB K=100 "
                   "| JBOAT ms | ratio | JBOAT cos | JBOAT rel. err | torch ms | ratio |")
    for prob, size, meth in rows:
        j = by.get(("jboat", prob, size, meth))
        u = by.get(("boatjit", prob, size, meth))
        t = by.get(("boattorch", prob, size, meth))
        ok = bool(j and j.get("ok"))
        jms = j["median_s"] * 1e3 if ok else None
        ums = u["median_s"] * 1e3 if u and u.get("ok") else None
        tms = t["median_s"] * 1e3 if t and t.get("ok") else None
        jc, jr = _acc(j)
        uc, ur = _acc(u)
        dims = f"{size} (y {j['dim_y']}, x {j['dim_x']})" if ok else size
        lines.append("| " + " | ".join([
            meth, prob, dims, _f(jms, ".2f"), _f(j.get("first_s") if ok else None, ".2f"),
            _f(j.get("in_grads") if ok else None, ".1f"),
            _f(j.get("in_hvps") if ok else None, ".1f"),
            j.get("floor_text", "-") if ok else (j or {}).get("error", "-")[:60],
            _f(j.get("over_floor") if ok else None, ".2f"), jc, jr,
            _f(j.get("peak_mb_K") if ok else None, ".0f"),
            _f(j.get("peak_mb_K_mem") if ok else None, ".0f"),
            _f(ums, ".2f") if u is None or u.get("ok") else "error",
            _f(jms / ums if jms and ums else None, ".2f"), uc, ur,
            _f(tms, ".2f") if t is None or t.get("ok") else "error",
            _f(jms / tms if jms and tms else None, ".2f")]) + " |")
    return "\n".join(lines)


def bare_table(doc: dict, tag: str = "") -> str:
    """jboat against hand-written Jittor (``bare``) and both against JBOAT: framework
    overhead, and the best any Jittor code reaches against JBOAT on the same graphs."""
    runs = [r for r in doc.get("runs", []) if r.get("tag", "") == tag and r.get("ok")]
    by = {(r["framework"], r["problem"], r["size"], r["method"]): r["median_s"] * 1e3
          for r in runs}
    rows = _rows([r for r in runs if r["framework"] == "bare"])
    if not rows:
        return ""
    lines = _start("| chain | problem | size | jboat ms | bare Jittor ms | jboat / bare "
                   "| JBOAT ms | bare / JBOAT | jboat / JBOAT |")
    for prob, size, meth in rows:
        j, b, u = (by.get((fw, prob, size, meth)) for fw in ("jboat", "bare", "boatjit"))
        lines.append("| " + " | ".join([
            meth, prob, size, _f(j, ".2f"), _f(b, ".2f"), _f(j / b if j and b else None, ".2f"),
            _f(u, ".2f"), _f(b / u if b and u else None, ".2f"),
            _f(j / u if j and u else None, ".2f")]) + " |")
    return "\n".join(lines)


def _has_rounds(runs) -> bool:
    return any(r.get("round", "") != "" for r in runs)


def _spread(values) -> str:
    """``median (min-max)`` of a list of numbers, ``-`` when empty."""
    if not values:
        return "-"
    mid = statistics.median(values)
    return f"{mid:.2f} ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else f"{mid:.2f}"


def _threads(r) -> str:
    info = (r or {}).get("info") or {}
    return str(info.get("threads", "-"))


def rounds_table(doc: dict, tag: str = "") -> str:
    """Rounds with the order rotated: per (chain, problem, size) each framework's median
    over rounds of its per-round median (ms), and the median (min-max) over rounds of the
    per-round ratios jboat / bare, jboat / JBOAT and jboat / BOAT (torch)."""
    runs = [r for r in doc.get("runs", []) if r.get("tag", "") == tag and r.get("round", "") != ""]
    by = {}
    for r in runs:
        by.setdefault((r["problem"], r["size"], r["method"]), {}).setdefault(
            r["framework"], {})[r["round"]] = r
    lines = _start("| chain | problem | size | rounds | jboat ms (min-max) | cosine | rel. err "
                   "| bare ms | jboat / bare | JBOAT ms | jboat / JBOAT | BOAT ms "
                   "| jboat / BOAT | threads jboat / BOAT |")
    for prob, size, meth in _rows(runs):
        fws = by[(prob, size, meth)]
        ms = {fw: [r["median_s"] * 1e3 for r in rs.values() if r.get("ok")]
              for fw, rs in fws.items()}

        def ratio(other):
            mine, theirs = fws.get("jboat", {}), fws.get(other, {})
            return [mine[k]["median_s"] / theirs[k]["median_s"] for k in mine
                    if k in theirs and mine[k].get("ok") and theirs[k].get("ok")]

        def cell(fw):
            if fw not in fws:
                return "-"
            if not ms[fw]:
                err = next(iter(fws[fw].values())).get("error", "error")
                return "error: " + str(err)[:40]
            return _spread(ms[fw])

        j = next((r for r in fws.get("jboat", {}).values() if r.get("ok")), None)
        t = next((r for r in fws.get("boattorch", {}).values() if r.get("ok")), None)
        jc, jr = _acc(j)
        lines.append("| " + " | ".join([
            meth, prob, size, str(len(fws.get("jboat", {}))), cell("jboat"), jc, jr,
            cell("bare"), _spread(ratio("bare")), cell("boatjit"), _spread(ratio("boatjit")),
            cell("boattorch"), _spread(ratio("boattorch")),
            f"{_threads(j)} / {_threads(t)}"]) + " |")
    return "\n".join(lines)


def errors(doc: dict) -> str:
    out = []
    for r in doc.get("runs", []):
        if not r.get("ok"):
            out.append(f"* {r['framework']} {r['method']} {r['problem']} {r['size']}"
                       f"{' [' + r['tag'] + ']' if r.get('tag') else ''}"
                       f"{' round ' + str(r['round']) if r.get('round', '') != '' else ''}"
                       f": {r.get('error')}")
    return "\n".join(out)


def markdown(doc: dict) -> str:
    m = doc.get("machine", {})
    parts = [f"# jboat benchmarks\n\nMachine: {m.get('nproc')} cores, {m.get('cpu')}, "
             f"load average at start {m.get('loadavg')}. K = {doc.get('K')} inner steps "
             f"(peak memory also at K = {doc.get('K_mem')}). Times are medians of "
             "warm calls; `first call` includes kernel compilation when the cache is cold. "
             "`grads`/`HVPs`: time per hyper-iteration divided by one gradient / one HVP "
             "of f measured in the same process; `x floor`: time over the floor in those "
             "units. `ratio` = jboat time / upstream time (below 1: jboat faster).\n",
             table(doc)]
    bare = bare_table(doc)
    if bare:
        parts.append("\n## Against hand-written Jittor\n\n`bare`: the same math as a "
                     "short script without any framework (`adapters/bare_jt.py`); "
                     "`bare / JBOAT` bounds what any Jittor implementation gains over "
                     "JBOAT on these graphs.\n\n" + bare)
    tags = sorted({r.get("tag", "") for r in doc.get("runs", [])} - {""})
    for tag in tags:
        tagged = [r for r in doc.get("runs", []) if r.get("tag", "") == tag]
        if _has_rounds(tagged):
            parts.append(f"\n## Variant `{tag}` (rounds, order rotated)\n\n"
                         + rounds_table(doc, tag))
            continue
        parts.append(f"\n## Variant `{tag}`\n\n" + table(doc, tag))
        bare = bare_table(doc, tag)
        if bare:
            parts.append("\n" + bare)
    err = errors(doc)
    if err:
        parts.append("\n## Failed runs\n\n" + err)
    return "\n".join(parts) + "\n"

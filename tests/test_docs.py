"""The documentation site (mkdocs.yml, docs/) and the promises of its pages.

* The site builds with ``mkdocs build --strict`` (warnings are errors: a broken link or
  anchor, a page missing from the navigation, a docstring the API reference cannot
  read). Skipped, with the reason, where MkDocs is not installed (``pip install -e
  '.[docs]'``); ``.ci/run`` installs it and builds the site itself.
* Every number names its file: every table of the results page, and every table of any
  page whose header holds a measurement (ms, MB, a ratio to another framework...), is
  followed by a ``Source:`` line naming files of ``benchmarks/results/``; every such file
  the pages (and the README) name exists.
* The README's two set-up commands are those ``.ci/run`` runs, byte for byte.
* The flush period the long-horizons page states is ``FLUSH_EVERY`` (read from the
  source: nothing here imports Jittor).
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RESULTS = ROOT / "benchmarks" / "results"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_ext" not in p.parts)

#: A results file as the pages name it: ``benchmarks/results/NAME.md`` (or .json).
RESULT_PATH = re.compile(r"benchmarks/results/([\w.\-]+\.(?:md|json))")
#: A Source line saying that each row of its table names its own file.
EACH_ROW = re.compile(r"the file (?:named in|of) each row")
#: Table headers that hold a measurement: such a table must say where its numbers are from.
MEASURED = re.compile(r"\bms\b|\bMB\b|ms/|/ BOAT|/ JBOAT|speed-up|test_accuracy|"
                      r"oracle calls|\btime\b|\bs\)|first it", re.I)


def tables(text: str) -> list[tuple[int, str, str, list[str]]]:
    """``(line number, header line, the paragraph after the table, the rows)`` for each
    table."""
    lines = text.splitlines()
    found, i, fence = [], 0, False
    while i < len(lines):
        if lines[i].lstrip().startswith("```"):
            fence = not fence
        is_table = (not fence and lines[i].lstrip().startswith("|") and i + 1 < len(lines)
                    and re.match(r"\s*\|\s*:?-", lines[i + 1]))
        if not is_table:
            i += 1
            continue
        start, header = i, lines[i]
        while i < len(lines) and lines[i].lstrip().startswith("|"):
            i += 1
        rows = lines[start + 2:i]
        while i < len(lines) and not lines[i].strip():
            i += 1
        after = []
        while i < len(lines) and lines[i].strip():
            after.append(lines[i].strip())
            i += 1
        found.append((start + 1, header, " ".join(after), rows))
    return found


def _rel(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_the_pages_exist_and_are_in_the_navigation():
    nav = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [str(p.relative_to(DOCS)) for p in PAGES if str(p.relative_to(DOCS)) not in nav]
    assert not missing, f"pages not in mkdocs.yml's nav: {missing}"
    for name in ("getting-started.md", "plugins.md", "results.md", "coming-from-jboat.md",
                 "api/index.md", "api/contract.md", "api/numerics.md", "cli.md", "gpu.md"):
        assert (DOCS / name).is_file(), name


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_every_measured_table_names_its_source(page):
    """A results table says where its numbers come from: the paragraph under it starts
    with ``Source:`` and names at least one file of benchmarks/results/ that exists."""
    is_results = page.name == "results.md"
    bad = []
    for line, header, after, rows in tables(page.read_text(encoding="utf-8")):
        if not (is_results or MEASURED.search(header)):
            continue
        if not after.startswith("Source:"):
            bad.append(f"{_rel(page)}:{line}: no 'Source:' line under the table")
            continue
        named = RESULT_PATH.findall(after)
        if not named and EACH_ROW.search(after):  # every row names its own file
            unnamed = [r for r in rows if not RESULT_PATH.search(r)]
            bad += [f"{_rel(page)}:{line}: a row names no benchmarks/results/ file: {r}"
                    for r in unnamed]
            named = [n for r in rows for n in RESULT_PATH.findall(r)]
        elif not named:
            bad.append(f"{_rel(page)}:{line}: its Source line names no benchmarks/results/ file")
        bad += [f"{_rel(page)}:{line}: benchmarks/results/{n} does not exist"
                for n in named if not (RESULTS / n).is_file()]
    assert not bad, "\n".join(bad)


def test_every_results_file_named_exists():
    """Every ``benchmarks/results/X`` the pages, the README and CONTRIBUTING name exists."""
    bad = []
    for page in [*PAGES, ROOT / "README.md", ROOT / "CONTRIBUTING.md"]:
        for name in RESULT_PATH.findall(page.read_text(encoding="utf-8")):
            if not (RESULTS / name).is_file():
                bad.append(f"{_rel(page)}: benchmarks/results/{name}")
    assert not bad, f"named but missing: {bad}"


def test_the_results_page_names_date_machine_threads_rounds():
    """Each Source line of the results page says when, where, with how many threads and
    rounds (or says that one was not recorded)."""
    text = (DOCS / "results.md").read_text(encoding="utf-8")
    bad = []
    for line, _, after, _ in tables(text):
        if EACH_ROW.search(after):
            continue  # tables whose rows each name their source and conditions
        checks = {"date": r"20\d\d-\d\d-\d\d", "machine": r"core|machine",
                  "threads": r"thread", "rounds": r"round|run|seed|measurement"}
        missing = [k for k, rx in checks.items() if not re.search(rx, after)]
        if missing:
            bad.append(f"docs/results.md:{line}: Source line without {missing}")
    assert not bad, "\n".join(bad)


def test_readme_commands_are_the_ones_ci_runs():
    """The README's two set-up commands, byte for byte, are lines of .ci/run."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```sh\n(# 1\. install.*?)```", readme, re.S)
    assert block, "README.md has no set-up block starting with '# 1. install'"
    commands = [ln for ln in block[1].splitlines() if ln and not ln.startswith("#")]
    assert len(commands) == 2, commands
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    for command in commands:
        assert command in ci, f".ci/run does not run the README's command: {command}"
    started = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    assert block[1] in started, "docs/getting-started.md shows other set-up commands"


def test_the_flush_period_the_docs_state_is_the_code_s():
    tree = ast.parse((ROOT / "jboat_core" / "numerics" / "autodiff.py").read_text())
    (value,) = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
                and any(getattr(t, "id", "") == "FLUSH_EVERY" for t in n.targets)]
    page = (DOCS / "guide" / "long-horizons.md").read_text(encoding="utf-8")
    assert f"every {value} steps" in page and f"`FLUSH_EVERY` = {value}" in page


#: Runs ``mkdocs build`` in a new process and says whether it imported Jittor.
BUILD = """
import atexit, sys
atexit.register(lambda: print("jittor imported:", "jittor" in sys.modules))
from mkdocs.__main__ import cli
cli(["build", "--strict", "-d", sys.argv[1]])
"""


def test_the_site_builds_strictly_without_importing_jittor(tmp_path):
    """``mkdocs build --strict`` (the command of the README and .ci/run): no warning, no
    Jittor import, and the API reference lists numerics' lazily loaded names."""
    if importlib.util.find_spec("mkdocs") is None or importlib.util.find_spec(
            "mkdocstrings_handlers") is None:
        pytest.skip("MkDocs is not installed here: pip install -e '.[docs]' "
                    "(.ci/run installs it and builds the site)")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    out = subprocess.run([sys.executable, "-c", BUILD, str(site)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-5000:]
    assert "jittor imported: False" in out.stdout, out.stdout[-2000:]
    api = (site / "api" / "numerics" / "index.html").read_text(encoding="utf-8")
    assert 'id="jboat_core.numerics.solve_cg"' in api, "numerics' lazy names are not rendered"

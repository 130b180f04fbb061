"""Checkpoints trusted for nothing: every tampered, swapped or odd checkpoint ends in one
line ``jboat: error: checkpoint PATH: KEY: what; what to do`` and a non-zero exit, never
a traceback, a hang, a huge allocation or a silently wrong run; the history is written
apart (O(state) per checkpoint) and a crash between the two writes resumes exactly.

Runs use ``tests/fault_task.py`` (ridge, 5 variables per level, 2-4 iterations).
"""

import io
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest

from jboat_core.run.checkpoint import (HISTORY, NAME, CheckpointError, Equal, HistoryLog,
                                   load_checkpoint, read_meta, save_checkpoint, schema_of)

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "JBOAT_LOAD_PLUGINS": "jboat"}

TASK = """[task]
module = "{module}"
iterations = {iterations}
[optim.lower]
lr = 0.1
[optim.upper]
type = "Adam"
lr = {upper_lr}
[solver]
{solver}
lower_iters = 3
"""


def task_file(folder: Path, iterations=2, upper_lr=0.05, module=None, name="task.toml",
              solver='na_op = ["RAD"]'):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(TASK.format(module=module or HERE / "fault_task.py",
                                iterations=iterations, upper_lr=upper_lr, solver=solver))
    return path


def jboat(*args, timeout=600, env=None):
    return subprocess.run([sys.executable, "-m", "jboat_core.run.cli", *map(str, args)],
                          capture_output=True, text=True, env=env or ENV, timeout=timeout)


def last_line(res) -> str:
    return res.stderr.strip().splitlines()[-1] if res.stderr.strip() else ""


def refused(res, out: Path, key: str) -> str:
    """The run failed with one line naming the checkpoint and ``key``, no traceback."""
    line = last_line(res)
    assert res.returncode == 1, res.stderr[-2000:]
    assert "Traceback" not in res.stderr, res.stderr[-2000:]
    assert line.startswith(f"jboat: error: checkpoint {out / NAME}: {key}"), res.stderr[-2000:]
    return line


def rewrite(path: Path, meta=None, members: dict | None = None) -> None:
    """Rewrite a checkpoint: ``meta(meta_dict)`` edits the metadata in place; ``members``
    replaces (bytes) or adds archive entries."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    data = json.loads(np.load(io.BytesIO(entries["__meta__.npy"])).tobytes())
    if meta is not None:
        meta(data)
    buf = io.BytesIO()
    np.save(buf, np.frombuffer(json.dumps(data).encode(), dtype=np.uint8))
    entries["__meta__.npy"] = buf.getvalue()
    entries.update(members or {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        for name, blob in entries.items():
            z.writestr(name, blob)


def npy(array) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


# -- without Jittor: the metadata and the path are checked first ----------------------
def fake_checkpoint(out: Path, next_iter) -> None:
    out.mkdir(parents=True)
    save_checkpoint(out / NAME, {"x": np.zeros(3)}, {}, 0)
    rewrite(out / NAME, meta=lambda m: m.update(next_iter=next_iter))


@pytest.mark.parametrize("value,what", [
    (-1, "-1 is negative"), (1.5, "1.5 is not a whole number"),
    ("2", '"2" is not a whole number'), (True, "true is not a whole number"),
    (99, "the checkpoint is at iteration 99, past the 3 iterations asked for")],
    ids=["negative", "fractional", "string", "bool", "past-the-end"])
def test_next_iter_is_checked_before_jittor(tmp_path, value, what):
    out = tmp_path / "o"
    fake_checkpoint(out, value)
    res = jboat("run", task_file(tmp_path, iterations=3), "--out", out, "--resume")
    line = refused(res, out, "next_iter")
    assert what in line and "jittor" not in res.stderr.lower()


@pytest.mark.parametrize("kind", ["fifo", "folder", "link"])
def test_a_checkpoint_that_is_no_regular_file_is_refused_unopened(tmp_path, kind):
    out = tmp_path / "o"
    out.mkdir()
    target = out / NAME
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    else:
        save_checkpoint(tmp_path / "elsewhere.npz", {"x": np.zeros(3)}, {}, 0)
        target.symlink_to(tmp_path / "elsewhere.npz")
    res = jboat("run", task_file(tmp_path), "--out", out, "--resume", timeout=120)
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    name = {"fifo": "a FIFO (named pipe)", "folder": "a folder", "link": "a symbolic link"}[kind]
    assert last_line(res) == (f"jboat: error: checkpoint {target}: is {name}, not a regular "
                              "file; remove it (jboat reads only files it wrote) or start "
                              "afresh with --overwrite")


def test_an_older_schema_is_refused_with_advice(tmp_path):
    out = tmp_path / "o"
    fake_checkpoint(out, 1)
    rewrite(out / NAME, meta=lambda m: m.update(schema=1))
    res = jboat("run", task_file(tmp_path), "--out", out, "--resume")
    assert res.returncode == 1
    assert "has schema 1 (an older jboat kept the history inside" in last_line(res)
    assert "resume with the jboat version that wrote it" in last_line(res)


def rewrite_meta_text(path: Path, edit) -> None:
    """Rewrite a checkpoint's metadata as text: ``edit(json_text) -> json_text``."""
    with zipfile.ZipFile(path) as z:
        entries = {n: z.read(n) for n in z.namelist()}
    text = np.load(io.BytesIO(entries["__meta__.npy"])).tobytes().decode()
    entries["__meta__.npy"] = npy(np.frombuffer(edit(text).encode(), dtype=np.uint8))
    with zipfile.ZipFile(path, "w") as z:
        for name, blob in entries.items():
            z.writestr(name, blob)


@pytest.mark.parametrize("depth", [100, 100_000])
def test_deeply_nested_metadata_is_one_line(tmp_path, depth):
    """Nested lists deeper than Python parses (a RecursionError) or than jboat writes:
    one line before Jittor, no traceback."""
    out = tmp_path / "o"
    fake_checkpoint(out, 1)
    deep = "[" * depth + "]" * depth
    rewrite_meta_text(out / NAME, lambda t: t.replace('"state": {',
                                                      f'"state": {{"deep": {deep}, ', 1))
    res = jboat("run", task_file(tmp_path, iterations=3), "--out", out, "--resume")
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert last_line(res).startswith(f"jboat: error: checkpoint {out / NAME} has damaged "
                                      "metadata (nested"), last_line(res)
    assert "jittor" not in res.stderr.lower()


def test_huge_numbers_in_the_metadata_are_refused_naming_the_field(tmp_path):
    out = tmp_path / "o"
    fake_checkpoint(out, 10**400)
    res = jboat("run", task_file(tmp_path, iterations=3), "--out", out, "--resume")
    line = refused(res, out, "next_iter")
    assert "is more iterations than a run can ask for (1000000000)" in line and len(line) < 400


def test_metadata_limits_come_from_the_file_and_the_live_state(tmp_path):
    """No constant caps the metadata: 20 MB of it (a task's large plain state) is read
    back; a compressed entry declaring more than the file holds and than the live
    state needs (a zip bomb) is refused before it is decompressed."""
    from jboat_core.run.checkpoint import meta_size
    state = {"notes": "x" * 20_000_000}
    save_checkpoint(tmp_path / NAME, state, {}, 1)
    assert load_checkpoint(tmp_path / NAME, {}, schema=schema_of(state))[0] == state
    rewrite(tmp_path / NAME)  # deflated: 20 MB of metadata in a file of some KB
    assert os.path.getsize(tmp_path / NAME) < 200_000
    with pytest.raises(CheckpointError, match=r"__meta__: declares 2000\d\d\d\d bytes, more "
                                              r"than the whole file holds"):
        load_checkpoint(tmp_path / NAME, {}, schema=schema_of(state))
    live = meta_size(state, {})
    assert load_checkpoint(tmp_path / NAME, {}, schema=schema_of(state),
                           live_meta=live)[0] == state


def test_a_zip_bomb_allocates_nothing():
    """A 64 MB member (64 KB compressed) where the live variable has 5 floats: refused
    from the zip's central directory, before decompressing; a lying .npy header (a huge
    shape in a small member) is refused from the header, before allocating."""
    import tempfile
    folder = Path(tempfile.mkdtemp())
    state = {"ll_var": [np.zeros(5, np.float32)], "lr": 0.1}
    schema = schema_of(state)
    save_checkpoint(folder / NAME, state, {}, 1)
    rewrite(folder / NAME, members={"a0.npy": npy(np.zeros(16_000_000, np.float32))})
    assert os.path.getsize(folder / NAME) < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"ll_var\[0\]: its archive entry declares "
                                                  r"64000128 bytes, the live variable it is "
                                                  r"written into needs 20"):
            load_checkpoint(folder / NAME, {}, schema=schema)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000


def test_lying_npy_header_is_refused_before_allocating():
    import tempfile
    folder = Path(tempfile.mkdtemp())
    state = {"v": [np.zeros(5, np.float32)]}
    save_checkpoint(folder / NAME, state, {}, 1)
    blob = bytearray(npy(np.zeros(5, np.float32)))
    text = blob[10:blob.index(b"\n") + 1].decode("latin1")
    new = text.rstrip("\n").rstrip(" ").replace("(5,)", "(900000000,)")
    new = new.ljust(len(text) - 1) + "\n"
    assert len(new) == len(text)
    rewrite(folder / NAME, members={"a0.npy": bytes(blob[:10]) + new.encode("latin1")
                                    + bytes(20)})
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError, match=r"v\[0\]: shape \[900000000\] float32, the "
                                                  r"live variable it is written into is "
                                                  r"\[5\] float32"):
            load_checkpoint(folder / NAME, {}, schema=schema_of(state))
        assert tracemalloc.get_traced_memory()[1] < 4_000_000
    finally:
        tracemalloc.stop()


def test_config_values_are_never_taken_from_a_checkpoint(tmp_path):
    save_checkpoint(tmp_path / NAME, {"opt": {"lr": 0.5, "n_step": 2}}, {}, 1)
    schema = {"opt": {"lr": Equal(0.05, "the task file"), "n_step": schema_of(2)}}
    with pytest.raises(CheckpointError, match=r"opt.lr: the checkpoint has 0.5, the task "
                                              r"file gives 0.05; the task file decides it"):
        load_checkpoint(tmp_path / NAME, {}, schema=schema)


class FakeProblem:
    """What ``Checkpoints`` needs of a Problem: a growing history and a fixed state."""

    def __init__(self):
        self.history, self.loaded = [], None
        self.w = np.arange(1000, dtype=np.float32)

    def state_dict(self, history=True):
        return {"w": self.w, **({"history": self.history} if history else {})}

    def state_schema(self):
        return schema_of({"w": self.w})

    def load_state_dict(self, state):
        self.loaded = state


def test_checkpoint_writes_cost_the_state_not_the_history(tmp_path):
    """--checkpoint-every 1 over 300 iterations: every checkpoint has the same size, and
    the history file grows by the new lines only."""
    from jboat_core.run.resume import Checkpoints
    ckpts, problem = Checkpoints(tmp_path / NAME, {"task": "t"}), FakeProblem()
    sizes, grown = set(), []
    for it in range(300):
        problem.history.append({"iter": it, "upper_loss": 1.0 / (it + 1), "time": 0.001})
        before = (tmp_path / HISTORY).stat().st_size if it else 0
        ckpts.save(problem, it + 1)
        sizes.add((tmp_path / NAME).stat().st_size)
        grown.append((tmp_path / HISTORY).stat().st_size - before)
    assert max(sizes) - min(sizes) < 32  # the digits of next_iter and the line count
    assert max(grown) < 100
    fresh = Checkpoints(tmp_path / NAME, {"task": "t"})
    assert fresh.restore(FakeProblem(), 300) == 300


def test_history_lines_after_the_checkpoint_are_cut_and_a_changed_history_refused(tmp_path):
    from jboat_core.run.resume import Checkpoints
    ckpts, problem = Checkpoints(tmp_path / NAME, {"task": "t"}), FakeProblem()
    for it in range(3):
        problem.history.append({"iter": it, "upper_loss": float("nan") if it == 1 else 0.5})
        ckpts.save(problem, it + 1)
    covered = (tmp_path / HISTORY).read_bytes()
    with open(tmp_path / HISTORY, "ab") as fh:  # a crash after appending, before the npz
        fh.write(b'{"iter": 3, "upper_loss": 0.25}\n{"iter": 4, "upp')
    again = FakeProblem()
    assert Checkpoints(tmp_path / NAME, {"task": "t"}).restore(again, 5) == 3
    assert (tmp_path / HISTORY).read_bytes() == covered
    history = again.loaded["history"]
    assert [h["iter"] for h in history] == [0, 1, 2] and np.isnan(history[1]["upper_loss"])
    (tmp_path / HISTORY).write_bytes(covered.replace(b"0.5", b"0.6"))
    with pytest.raises(CheckpointError, match=r"history.sha256: .* does not hold the lines"):
        Checkpoints(tmp_path / NAME, {"task": "t"}).restore(FakeProblem(), 5)
    (tmp_path / HISTORY).write_bytes(covered[:20])
    with pytest.raises(CheckpointError, match=r"history: .* holds 20 bytes, the checkpoint "
                                              r"covers"):
        Checkpoints(tmp_path / NAME, {"task": "t"}).restore(FakeProblem(), 5)


def test_fingerprint_differences_show_the_first_differing_key():
    from jboat_core.run.checkpoint import fingerprint_differences
    saved = {"optim": {"lower": {"lr": 0.1, "type": "SGD"}, "upper": {"lr": 0.05,
                                                                       "type": "Adam"}}}
    now = {"optim": {"lower": {"lr": 0.1, "type": "SGD"}, "upper": {"lr": 0.5,
                                                                     "type": "Adam"}}}
    assert fingerprint_differences(saved, now) == ["optim.upper.lr: saved 0.05, now 0.5"]


# -- with Jittor: the state is checked against the live problem ------------------------
@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    """A 2-iteration run checkpointed at every iteration, and its task file."""
    folder = tmp_path_factory.mktemp("base")
    task = task_file(folder, iterations=2)
    res = jboat("run", task, "--out", folder / "o", "--checkpoint-every", 1)
    assert res.returncode == 0, res.stderr[-3000:]
    return folder / "o", task


def tampered(base_run, tmp_path, meta=None, members=None) -> Path:
    out = tmp_path / "o"
    shutil.copytree(base_run[0], out)
    (out / ".jboat.lock").unlink(missing_ok=True)
    rewrite(out / NAME, meta=meta, members=members)
    return out


def _state_key(meta, *path):
    node = meta["state"]
    for key in path[:-1]:
        node = node[key]
    return node, path[-1]


def _array_member(meta, *path) -> str:
    node, key = _state_key(meta, *path)
    return node[key]["__array__"] + ".npy"


def _set(path, value):
    def edit(meta):
        node, key = _state_key(meta, *path)
        node[key] = value
    return edit


def _drop(*path):
    def edit(meta):
        node, key = _state_key(meta, *path)
        del node[key]
    return edit


@pytest.mark.jittor
@pytest.mark.parametrize("case", ["shape", "dtype", "missing", "extra", "string-for-array",
                                  "lr", "n_step", "huge-n_step", "operator"])
def test_a_tampered_state_is_refused_naming_the_key(base_run, tmp_path, case):
    meta = read_meta(base_run[0] / NAME)
    member = _array_member(meta, "ul_var", 0)
    edits = {
        "shape": (None, {member: npy(np.zeros(6, np.float32))}, "ul_var[0]",
                  "shape [6] float32, the live variable it is written into is [5] float32"),
        "dtype": (None, {member: npy(np.zeros(5, np.float64))}, "ul_var[0]",
                  "shape [5] float64, the live variable it is written into is [5] float32"),
        "missing": (_drop("ll_opt", "n_step"), None, "ll_opt.n_step",
                    "missing (this problem has it)"),
        "extra": (_set(("ll_opt", "momentum_buffer"), 3), None, "ll_opt.momentum_buffer",
                  "not part of this problem's state"),
        "string-for-array": (_set(("ll_var", 0), "zeros"), None, "ll_var[0]",
                             'expected an array ([5] float32), found "zeros"'),
        "lr": (_set(("ul_opt", "lr"), 0.5), None, "ul_opt.lr",
               "the checkpoint has 0.5, the task file gives 0.05; the task file decides it"),
        "n_step": (_set(("ul_opt", "n_step"), -4), None, "ul_opt.n_step",
                   "-4 is not a whole number from 0 to 2**53"),
        "huge-n_step": (_set(("ll_opt", "n_step"), 10**400), None, "ll_opt.n_step",
                        "00000... is not a whole number from 0 to 2**53"),
        "operator": (_set(("operators", "RAD"), {"v": [{"__array__": "a0"}] * 3}), None,
                     "operators.RAD.v", "3 arrays; an operator's state lists are shaped"),
    }
    meta_edit, members, key, what = edits[case]
    out = tampered(base_run, tmp_path, meta=meta_edit, members=members)
    res = jboat("run", base_run[1], "--out", out, "--resume", "--iterations", 3)
    line = refused(res, out, key)
    assert what in line, line
    assert (out / "metrics.json").read_bytes() == (base_run[0] / "metrics.json").read_bytes()


@pytest.mark.jittor
def test_a_zip_bomb_in_a_run_is_refused(base_run, tmp_path):
    meta = read_meta(base_run[0] / NAME)
    out = tampered(base_run, tmp_path, members={
        _array_member(meta, "ll_var", 0): npy(np.zeros(32_000_000, np.float32))})
    res = jboat("run", base_run[1], "--out", out, "--resume", "--iterations", 3)
    assert "its archive entry declares 128000128 bytes" in refused(res, out, "ll_var[0]")


@pytest.mark.jittor
def test_a_changed_optim_table_shows_both_values(base_run, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(base_run[0], out)
    other = task_file(tmp_path, iterations=3, upper_lr=0.5, name="other.toml")
    res = jboat("run", other, "--out", out, "--resume")
    assert res.returncode == 1
    assert "was written for another problem: optim.upper.lr: saved 0.05, now 0.5" in \
        last_line(res)


@pytest.mark.jittor
def test_another_module_of_the_same_name_is_refused_unless_allowed(tmp_path):
    source = (HERE / "fault_task.py").read_text()
    first, second = tmp_path / "a", tmp_path / "b"
    for folder, text in ((first, source), (second, source.replace(
            "return value * float(\"nan\") if 0 <= nan_at", "return 2 * value * float(\"nan\")"
            " if 0 <= nan_at"))):
        folder.mkdir()
        (folder / "fault_task.py").write_text(text)
        task_file(folder, iterations=2, module="fault_task.py")
    assert (first / "fault_task.py").read_text() != (second / "fault_task.py").read_text()
    out = tmp_path / "o"
    res = jboat("run", first / "task.toml", "--out", out, "--checkpoint-every", 1)
    assert res.returncode == 0, res.stderr[-2000:]
    res = jboat("run", second / "task.toml", "--out", out, "--resume", "--iterations", 3)
    assert res.returncode == 1
    import hashlib
    digests = [hashlib.sha256((f / "fault_task.py").read_bytes()).hexdigest()[:16]
               for f in (first, second)]
    assert (f"task module fault_task.py: its source changed since the checkpoint (sha256 "
            f"{digests[0]} saved, {digests[1]} now)") in last_line(res)
    assert "--allow-changed-module" in last_line(res)
    res = jboat("run", second / "task.toml", "--out", out, "--resume", "--iterations", 3,
                "--allow-changed-module")
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"jboat: notice: task module fault_task.py changed" in res.stderr
    assert json.loads((out / "metrics.json").read_text())["resumed_from"] == 2


@pytest.mark.jittor
def test_a_crash_between_history_and_checkpoint_resumes_bit_identical(tmp_path):
    """Straight 4 iterations vs 2 checkpointed + history lines of a write that crashed
    after the history append (a whole line and half a line) + resume: the same history to
    the last bit, and the history file holds the 4 lines once."""
    task = task_file(tmp_path, iterations=4)
    straight = jboat("run", task, "--out", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr[-2000:]
    first = jboat("run", task, "--out", tmp_path / "b", "--checkpoint-every", 2,
                  "--iterations", 2)
    assert first.returncode == 0, first.stderr[-2000:]
    with open(tmp_path / "b" / HISTORY, "ab") as fh:
        fh.write(b'{"iter": 2, "upper_loss": 123.0, "lower_loss": 1.0, "time": 0.1}\n{"it')
    resumed = jboat("run", task, "--out", tmp_path / "b", "--resume", "--checkpoint-every", 2)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())["history"]
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())["history"]
    strip = [{k: v for k, v in h.items() if k != "time"} for h in a]
    assert strip == [{k: v for k, v in h.items() if k != "time"} for h in b]
    lines = (tmp_path / "b" / HISTORY).read_text().splitlines()
    assert [json.loads(ln)["iter"] for ln in lines] == [0, 1, 2, 3]
    assert read_meta(tmp_path / "b" / NAME)["history"]["lines"] == 4


@pytest.mark.jittor
def test_a_scheduled_learning_rate_is_state_and_resumes_exactly(tmp_path):
    """DM sets the upper learning rate every iteration (``schedules_ul_lr``): the rate in
    its checkpoint differs from the task file's and is restored, not refused; the resumed
    run matches a straight one to the last bit."""
    dm = 'gm_op = ["DM"]\nna_op = ["RAD"]'
    task = task_file(tmp_path, iterations=3, solver=dm)
    straight = jboat("run", task, "--out", tmp_path / "a")
    assert straight.returncode == 0, straight.stderr[-2000:]
    first = jboat("run", task, "--out", tmp_path / "b", "--checkpoint-every", 1,
                  "--iterations", 2)
    assert first.returncode == 0, first.stderr[-2000:]
    saved = read_meta(tmp_path / "b" / NAME)["state"]["ul_opt"]["lr"]
    assert saved != 0.05  # the schedule's value, not the task file's
    resumed = jboat("run", task, "--out", tmp_path / "b", "--resume")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert [(h["upper_loss"], h["lower_loss"]) for h in a["history"]] == \
        [(h["upper_loss"], h["lower_loss"]) for h in b["history"]]

"""Corrections to Jittor 1.3.11's C++ source, applied before its first import.

Jittor compiles its core from the sources in its package folder at the first import and
recompiles a file whose text changed (its ``cache_compile`` keys objects by a hash of the
source). jboat edits a few lines there, once, before that import (measured on 2 cores: a
few seconds on an installed Jittor; nothing extra on a fresh one, whose first import
compiles everything anyway):

1. **The kernel of a one-element constant is cached without its dtype.** The seed of
   ``jt.grad`` (the constant 1 of the loss's dtype) and other one-element constants are
   ``ArrayOp`` outputs of shape [1], created "force-fused" (inlined into the kernels that
   read them). When such a constant must be executed on its own (measured: the seed of a
   loss ``a + b * c`` of one-element terms), its flag is gone by the time Jittor builds the
   kernel's cache key, and ``ArrayOp::jit_prepare`` writes the dtype (``«T:``) into the key
   only for flagged arrays. The kernel's source does depend on the dtype (it copies one
   ``float32`` or one ``float64``), but the in-process cache (``jit_ops``, keyed by that key)
   hands the first one compiled to every later one; the disk cache compares sources, so
   each process alone is right. Measured: in one process, ``jt.grad`` of a float32 loss
   ``(x*x).sum() + (x*x).sum()*0.5`` gives [4.5, 6]; the same in float64 afterwards gives
   [inf, inf] (half of the seed's eight bytes never written). The other order writes eight
   bytes into a four-byte slot. In jboat this made a checkpointed float64 unroll return 0
   or 1e95 and poisoned later runs in the process (issue 30): any process that ever
   differentiates both dtypes could get garbage. The fix keys a shape-[1] array as the
   constructor's flag would have (dtype, and the value where Jittor inlines it).
2. **``mean``'s backward multiplies by a float32 ``1/n``**
   (``make_number(1.0f*out->num / v->num, ...)``): in float64, d mean(x)/dx_i is
   0.3333333433 for n = 3, so float64 gradients through a mean are 1e-8 accurate. The fix
   divides by the count n instead (exact in float32 up to 2**24 elements; the same
   arithmetic as the forward mean).
3. **Two one-element operands take the left one's precision.** Jittor flags Python numbers
   and one-element reduction results as weak scalars, and ``binary_dtype_infer`` lets a
   weak scalar yield to the other operand; when *both* are weak the left one's size
   wins. So ``1e-2 * v.sum()`` and Python's ``sum(...)`` (it starts at the int 0) are
   float32 for a float64 ``v``, and so is the gradient of a float64 parameter of shape
   [1] (a regression head's bias) whenever the loss holds ``s * 0.5`` with ``s``
   one-element: the backward forms ``0.5 * dout`` with the number on the left (measured:
   d f / d b float32, 2e-8 off). The fix keeps the yielding rule for one weak operand and
   promotes two weak ones as usual (the larger size). A Python number is still float32,
   so a float32 program stays float32.

Each correction is applied only to the exact text it expects (Jittor 1.3.11.x), written
atomically beside the original (a new file replaces it: a hard link elsewhere keeps the
old text), and marked so that it is recognised afterwards. Where it cannot be applied (the
package folder is read-only, a symbolic link, or another version) nothing is changed and
``jboat doctor`` says why; jboat then warns once per process. Nothing here imports Jittor.
"""

from __future__ import annotations

import fcntl
import importlib.util
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

#: The marker written into every corrected line (how an applied correction is recognised).
MARKER = "/* jboat fix"
#: Jittor versions whose sources the corrections are written for.
VERSIONS = ("1.3.11",)
#: Longest wait for another process applying the corrections (seconds).
LOCK_TIMEOUT = 60.0


@dataclass(frozen=True)
class Fix:
    """One correction: ``anchor`` (Jittor's text) becomes ``replacement`` in ``path``
    (relative to the ``jittor`` package folder)."""

    name: str
    path: str
    anchor: str
    replacement: str
    summary: str


_SCALAR_RULE = ("    if (xscalar) dsize_ = y.dsize_();\n"
                "    if (yscalar) dsize_ = x.dsize_();")
_SCALAR_FIX = ("    " + MARKER + " 3: two one-element operands promote as usual */\n"
               "    if (xscalar && !yscalar) dsize_ = y.dsize_();\n"
               "    if (yscalar && !xscalar) dsize_ = x.dsize_();")

FIXES: tuple[Fix, ...] = (
    Fix("array-dtype-key", "src/ops/array_op.cc",
        "void ArrayOp::jit_prepare(JK& jk) {\n"
        "    if (output->flags.get(NodeFlags::_force_fuse)) {",
        "void ArrayOp::jit_prepare(JK& jk) {\n"
        "    " + MARKER + " 1: a [1] array keeps its dtype in the kernel key */\n"
        "    if (output->flags.get(NodeFlags::_force_fuse) || (output->shape.size() == 1"
        " && output->shape[0] == 1)) {",
        "one-element constants are cached per dtype (a float32 seed of jt.grad is never "
        "reused for a float64 one)"),
    Fix("mean-grad-count", "src/ops/reduce_op.cc",
        "        VarPtr n = make_number(1.0f*out->num / v->num, a);\n"
        "        return make_binary(a, n, ns_multiply);",
        "        " + MARKER + " 2: divide by the count, exact in float64 */\n"
        "        VarPtr n = make_number(1.0f*(v->num / out->num), a);\n"
        "        return make_binary(a, n, ns_divide);",
        "mean's backward divides by n (float64-exact) instead of multiplying by a float32 1/n"),
    Fix("scalar-promotion", "src/misc/nano_string.h",
        "inline  NanoString dtype_infer(NanoString x, NanoString y, bool xscalar=false, "
        "bool yscalar=false) {\n    int dsize_ = std::max(x.dsize_(), y.dsize_());\n"
        + _SCALAR_RULE,
        "inline  NanoString dtype_infer(NanoString x, NanoString y, bool xscalar=false, "
        "bool yscalar=false) {\n    int dsize_ = std::max(x.dsize_(), y.dsize_());\n"
        + _SCALAR_FIX,
        "a one-element Var and a Python number (or two one-element Vars) take the larger "
        "precision (ternary ops)"),
    Fix("scalar-promotion-binary", "src/misc/nano_string.h",
        "    if (op.is_bool()) return ns_bool;\n"
        "    int dsize_ = std::max(x.dsize_(), y.dsize_());\n" + _SCALAR_RULE,
        "    if (op.is_bool()) return ns_bool;\n"
        "    int dsize_ = std::max(x.dsize_(), y.dsize_());\n" + _SCALAR_FIX,
        "a one-element Var and a Python number (or two one-element Vars) take the larger "
        "precision: 1e-2 * v.sum() of a float64 v, and the gradient of a float64 [1]-shaped "
        "parameter, are float64"),
)


@dataclass(frozen=True)
class FixState:
    """What became of one correction in this process.

    Attributes
    ----------
    name : str
    state : str
        ``"applied"`` (now), ``"present"`` (applied before), or ``"skipped"``.
    reason : str
        One line: what was done, or why not and what to do.
    """

    name: str
    state: str
    reason: str

    @property
    def active(self) -> bool:
        """Whether Jittor's source carries the correction."""
        return self.state in ("applied", "present")


_STATES: tuple[FixState, ...] | None = None


def jittor_folder() -> Path | None:
    """The installed ``jittor`` package folder, found without importing it."""
    try:
        spec = importlib.util.find_spec("jittor")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def jittor_version(folder: Path) -> str | None:
    """``__version__`` of the Jittor in ``folder`` (read from its ``__init__.py``)."""
    import re

    try:
        text = (folder / "__init__.py").read_text(errors="replace")
    except OSError:
        return None
    found = re.search(r"""^__version__\s*=\s*['"]([^'"]+)['"]""", text, re.M)
    return found.group(1) if found else None


def states() -> tuple[FixState, ...] | None:
    """The corrections' states decided in this process (None before :func:`apply`)."""
    return _STATES


def all_active() -> bool:
    """True when every correction is in Jittor's source (after :func:`apply`)."""
    return bool(_STATES) and all(s.active for s in _STATES)


def apply(folder: Path | None = None) -> tuple[FixState, ...]:
    """Apply every correction that is not in Jittor's source yet; never raises.

    ``folder``: a Jittor package folder (default the installed one, whose result
    :func:`states` then reports). When a correction is missing, the work is serialised
    across processes (MPI ranks start together) by a lock on the package's ``src``
    folder itself (no file is created), waited for at most ``LOCK_TIMEOUT`` seconds.
    """
    global _STATES
    found = _apply_all(folder or jittor_folder())
    if folder is None:
        _STATES = found
    return found


def _apply_all(folder: Path | None) -> tuple[FixState, ...]:
    if folder is None:
        return tuple(FixState(f.name, "skipped", "Jittor is not installed") for f in FIXES)
    version = jittor_version(folder) or "unknown"
    if not version.startswith(VERSIONS):
        return tuple(FixState(f.name, "skipped", f"written for Jittor {', '.join(VERSIONS)}; "
                              f"this is {version}") for f in FIXES)
    if all(_present(folder, fix) for fix in FIXES):
        return tuple(FixState(f.name, "present", f.summary) for f in FIXES)
    try:
        with _locked(folder / "src"):
            return tuple(_apply_one(folder, fix) for fix in FIXES)
    except TimeoutError as exc:
        return tuple(FixState(f.name, "skipped", str(exc)) for f in FIXES)
    except OSError as exc:
        return tuple(FixState(f.name, "skipped", f"cannot lock {folder / 'src'}: "
                              f"{exc.strerror or exc}") for f in FIXES)


def _present(folder: Path, fix: Fix) -> bool:
    try:
        return fix.replacement in (folder / fix.path).read_text()
    except OSError:
        return False


def _apply_one(folder: Path, fix: Fix) -> FixState:
    path = folder / fix.path
    try:
        if path.is_symlink() or not path.is_file():
            return FixState(fix.name, "skipped", f"{path} is not a regular file; "
                            "left as it is")
        text = path.read_text()
    except OSError as exc:
        return FixState(fix.name, "skipped", f"cannot read {path}: {exc.strerror or exc}")
    if fix.replacement in text:
        return FixState(fix.name, "present", fix.summary)
    if text.count(fix.anchor) != 1:
        return FixState(fix.name, "skipped", f"{path} does not hold the expected text "
                        "(another Jittor build?); left as it is")
    try:
        _write_atomically(path, text.replace(fix.anchor, fix.replacement))
    except OSError as exc:
        return FixState(fix.name, "skipped", f"cannot write {path}: {exc.strerror or exc} "
                        "(run jboat once with write access to the Jittor package, e.g. "
                        "`jboat doctor`)")
    return FixState(fix.name, "applied", fix.summary)


def _write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to a new file beside ``path`` and rename it over ``path`` (same
    permissions; a hard link to the old file keeps the old text)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".jboat")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, path.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class _locked:
    """An exclusive ``flock`` on the folder ``path`` (opened read-only, never written),
    waited for with a timeout (``TimeoutError`` naming it)."""

    def __init__(self, path: Path):
        self.path = path
        self.fd = -1

    def __enter__(self):
        self.fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        deadline = time.monotonic() + LOCK_TIMEOUT
        while True:
            try:
                fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return self
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self.fd)
                    raise TimeoutError(f"another process held a lock on {self.path} for "
                                       f"more than {LOCK_TIMEOUT:.0f} s; Jittor's source "
                                       "was not corrected (run again once it ends)") \
                        from None
                time.sleep(0.05)

    def __exit__(self, *exc):
        os.close(self.fd)
        return False

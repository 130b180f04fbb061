"""Test configuration: Jittor's device decided as for users, and only jboat's own plugins.

No variable is needed: jboat decides CPU or CUDA before Jittor's import
(``jboat_core.platform.device``), here at once, so that every process a test starts
inherits the decision (and says nothing). ``JBOAT_DEVICE=cpu`` forces the CPU.
``JBOAT_LOAD_PLUGINS=jboat`` keeps whatever third-party plugins happen to be installed out
of the tests (the test that means to load them sets its own environment).
"""

import os
import sys

os.environ["JBOAT_LOAD_PLUGINS"] = "jboat"
os.environ.pop("JBOAT_DISABLE_PLUGINS", None)
os.environ.pop("JBOAT_STRICT_PLUGINS", None)

import pytest  # noqa: E402

from jboat_core.platform import device as _device  # noqa: E402
from jboat_core.plugins import registry as _registry  # noqa: E402

DEVICE = _device.apply()


def pytest_collection_modifyitems(config, items):
    """Tests marked ``gpu`` run where jboat decided CUDA; elsewhere skipped with the why."""
    if DEVICE.device == "cuda":
        return
    skip = pytest.mark.skip(reason=f"no CUDA for Jittor here ({DEVICE.device}, "
                                   f"{DEVICE.source}: {DEVICE.reason}; `jboat doctor`)")
    for item in items:
        if item.get_closest_marker("gpu") is not None:
            item.add_marker(skip)


@pytest.fixture
def builtin_registry():
    """A fresh registry of the built-in operators only."""
    reg = _registry.Registry.load()
    old = _registry.set_registry(reg)
    yield reg
    _registry.set_registry(old)


# Kernel fusion (cold-run time). Jittor compiles one kernel per new fused-op pattern (1-2 s
# of g++ each): most of a cold suite's time. Unfused, every elementary op is one kernel keyed
# by op, dtype and rank only, shared by all tests, so a cold suite compiles a few hundred
# instead of thousands. Tests of jboat's plumbing (errors, files, CLI, MPI, combinations)
# run unfused, in this process and in the processes they start; the modules that check
# numbers against exact references run fused as users run them (with oneDNN, which
# relays fused products and convolutions), except the DARTS supernet's cases: its mixed
# operations make most of the fused kernels, and the Conv-BN cases already check oneDNN's
# convolutions fused. ``JBOAT_TEST_FUSE=1`` runs everything fused.
FUSED_MODULES = {"test_operators_exact", "test_real_networks", "test_first_order",
                 "test_first_order_realnet", "test_conformance", "test_onednn"}
UNFUSED_CASES = ("supernet",)
if os.environ.get("JBOAT_TEST_FUSE", "") in ("", "0"):
    os.environ.setdefault("no_fuse", "1")


@pytest.fixture(autouse=True)
def _kernel_fusion(request):
    """Fused kernels for the exactness modules, the environment's setting elsewhere."""
    params = getattr(getattr(request.node, "callspec", None), "params", {})
    unfused_case = any(str(v).startswith(UNFUSED_CASES) for v in params.values())
    if request.module.__name__.rpartition(".")[2] not in FUSED_MODULES or unfused_case \
            or os.environ.get("no_fuse", "0") == "0" or "jittor" not in sys.modules \
            and request.node.get_closest_marker("jittor") is None:
        yield
        return
    from jboat_core.platform._jittor import jittor
    jt = jittor()
    old = jt.flags.no_fuse
    jt.flags.no_fuse = 0
    try:
        yield
    finally:
        jt.flags.no_fuse = old

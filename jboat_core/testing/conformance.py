"""The conformance suite every jboat operator passes, built-in or third-party.

Use it from a plugin's own tests::

    from jboat_core.testing.conformance import conformance_tests
    from my_plugin import MyOp

    test_my_op_conforms = conformance_tests(MyOp, module="my_plugin")

or call the ``check_*`` functions one by one. The Jittor-free checks run in milliseconds;
``check_returns_hypergradients`` runs the operator once on a small ridge problem.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from ..kinds import KINDS
from ..metadata import metadata_problems


def check_metadata(cls) -> None:
    """Declared metadata is valid (the registry's own validation)."""
    problems = metadata_problems(cls, KINDS[cls.kind])
    assert not problems, f"{cls.__name__}: " + "; ".join(problems)


def check_config_roundtrip(cls) -> None:
    """Defaults validate, survive a JSON round trip, and unknown keys are rejected."""
    model = cls.config_model
    default = model()
    again = model.model_validate(json.loads(json.dumps(default.model_dump(mode="json"))))
    assert again == default, f"{cls.name}: config does not round-trip through JSON"
    with pytest.raises(ValidationError):
        model.model_validate({"__surely_not_a_setting__": 1})


def check_import_without_jittor(module: str) -> None:
    """Importing the plugin module (as registration does) does not import Jittor."""
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "sys.exit(3 if 'jittor' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 3, f"importing {module} imports jittor"
    assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr}"


def default_chain(cls) -> list[str]:
    """A chain in which ``cls`` can run: itself, plus a required partner or RAD to finish
    a modifier."""
    chain = [cls.name]
    if cls.requires_any:
        chain.append(cls.requires_any[0])
    elif cls.role == "modifier":
        chain.append("RAD")
    return chain


def check_returns_hypergradients(cls, chain: list[str] | None = None, registry=None,
                                 lower_iters: int = 3, lr: float = 0.1) -> dict:
    """Run the operator in a chain on the ridge problem; one finite Var per ``ul_var``
    with matching shape and dtype, and a scalar ``upper_loss``. Returns the result."""
    import numpy as np

    from .._jittor import jittor
    from ..registry import get_registry
    from ..sequential import makes_functional_na_operation
    from ..solve import hypergradient_step
    from .problems import ridge_problem

    jt = jittor()
    reg = registry or get_registry()
    prob = ridge_problem()
    chain = chain or default_chain(cls)
    cfg: dict = {}
    kw = dict(ll_objective=prob.ll_objective, ul_objective=prob.ul_objective,
              ll_model=prob.ll_model, ul_model=prob.ul_model, ll_var=prob.ll_var,
              ul_var=prob.ul_var, solver_config=cfg)
    hg = makes_functional_na_operation(chain, registry=reg, **kw)
    ngd = reg.get("NGD", kind="dynamics").cls(prob.ll_objective, prob.ul_objective,
                                               prob.ll_model, prob.ul_model, lower_iters, cfg)
    result, _ = hypergradient_step(hg, ngd, prob.ll_model, jt.optim.SGD(prob.ll_var, lr),
                                   prob.ll_feed, prob.ul_feed)
    grads = result["hyper_gradients"]
    assert len(grads) == len(prob.ul_var)
    for g, x in zip(grads, prob.ul_var):
        assert isinstance(g, jt.Var)
        assert list(g.shape) == list(x.shape) and g.dtype == x.dtype
        assert np.all(np.isfinite(g.numpy()))
    assert result["upper_loss"].numel() == 1
    return result


def conformance_tests(cls, module: str | None = None, chain: list[str] | None = None,
                      run: bool = True):
    """A pytest test class running every check on ``cls``."""

    class _Conformance:
        def test_metadata(self):
            check_metadata(cls)

        def test_config_roundtrip(self):
            check_config_roundtrip(cls)

        def test_import_without_jittor(self):
            check_import_without_jittor(module or cls.__module__)

        if run and cls.kind == "hypergradient":
            @pytest.mark.jittor
            def test_returns_hypergradients(self):
                check_returns_hypergradients(cls, chain)

    _Conformance.__name__ = f"TestConformance{cls.__name__}"
    return _Conformance

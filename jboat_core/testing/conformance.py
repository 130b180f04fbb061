"""The conformance suite every jboat operator passes, built-in or third-party.

Use it from a plugin's own tests, installed or not::

    from jboat_core.testing.conformance import conformance_tests
    from my_plugin import MyOp

    TestMyOp = conformance_tests(MyOp, module="my_plugin")   # MyOp need not be installed

or call the ``check_*`` functions one by one (each takes ``registry=``: the registry to
compose in; by default the installed operators plus the classes checked). The Jittor-free
checks run in milliseconds; the run checks put the operator, of any kind, through
``Problem`` (the path users run) on a small ridge problem:

* it returns one finite hyper-gradient per upper variable and moves them;
* a NaN in F or in f stops the iteration with an error naming the operator and the outer
  iteration, leaving every variable, optimizer state and operator state bit-identical;
* its state survives a checkpoint: a problem restored from ``state_dict`` after two
  iterations computes the third as the original does;
* its math is right, by default and for every kind (``check_correct``; the float64
  targets and tolerances are in ``jboat_core.testing.correctness``): a hyper-gradient
  operator equals the unrolled, implicit or initialisation hyper-gradient (declared by
  ``approximates`` or inferred from its stage); a dynamics operator is differentiated
  exactly by RAD and descends f; a modifier (PTT, RGT, FOA or a third party's) is checked
  in its composition against the composition matrix's target, by its claim or its
  ``DynamicsPlan`` and at the point it passes on (read back from the ``ChainState``);
  IGA and DM against their closed forms; a solver follows its float64 reference
  trajectory, or without one its direction settles on the exact hyper-gradient. A
  sign-flipped or scaled result fails; an operator the kit cannot check declares why
  (``unchecked = "why"``) and the check is skipped with that reason.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from pydantic import ValidationError

from ..contract.kinds import KINDS
from ..contract.metadata import metadata_problems
from .compose import (_classes, _registry, _Switch, default_chain,  # noqa: F401
                      default_composition, lower_solver)


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


def conformance_problem(cls, chain=None, registry=None, lr: float = 0.1, lower_iters: int = 3,
                        explicit_x: bool = True, **solver):
    """``(Problem, ridge problem, switch)``: ``cls`` composed as by ``default_composition``
    on the ridge problem of ``jboat_core.testing.problems``, through ``Problem`` (the path
    ``Problem.run_iter`` takes for every kind); ``switch.nan_F`` / ``switch.nan_f`` make
    the objectives NaN; ``explicit_x=False`` keeps the ridge F as it is (no 0.05 |x|^2)."""
    from ..platform._jittor import jittor
    from ..solver.problem import Problem
    from .problems import ridge_problem

    jt = jittor()
    prob = ridge_problem()
    sw = _Switch(prob, explicit_x)
    cfg = {**default_composition(cls, chain), "lower_iters": lower_iters,
           "copy_last_param": True, **solver}
    reg = _registry(cls, registry)
    problem = Problem(cfg, ll_objective=sw.f, ul_objective=sw.F, ll_model=prob.ll_model,
                      ul_model=prob.ul_model, ll_opt=jt.optim.SGD(prob.ll_var, lr),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), gda_loss=sw.gda,
                      registry=reg, ll_solver=lower_solver(prob, _classes(cfg, reg)))
    return problem, prob, sw


def _check_grads(cls, problem, result) -> None:
    import numpy as np

    from ..platform._jittor import jittor

    jt = jittor()
    grads = result["hyper_gradients"]
    assert len(grads) == len(problem.ul_var), f"{cls.name}: {len(grads)} hyper-gradients"
    for g, x in zip(grads, problem.ul_var):
        assert isinstance(g, jt.Var)
        assert list(g.shape) == list(x.shape) and g.dtype == x.dtype
        assert np.all(np.isfinite(g.numpy()))
    assert np.isfinite(result["upper_loss"])


def check_returns_hypergradients(cls, chain: list[str] | None = None, registry=None,
                                 lower_iters: int = 3, lr: float = 0.1) -> dict:
    """Evaluate ``cls`` once through ``Problem`` (``Problem.evaluate``: the path of
    ``run_iter``, nothing updated) on the ridge problem of
    ``jboat_core.testing.problems`` from its initial point, with SGD(``lr``) and
    ``lower_iters`` inner steps: one finite Var per ``ul_var`` with matching shape and
    dtype, a finite ``upper_loss``. Returns the result (for exactness checks)."""
    problem, prob, _ = conformance_problem(cls, chain, registry, lr, lower_iters,
                                           explicit_x=False)
    result = problem.evaluate(prob.ll_feed, prob.ul_feed, 0)
    _check_grads(cls, problem, result)
    return result


def check_runs_through_problem(cls, chain: list[str] | None = None, registry=None) -> None:
    """Two outer iterations of ``cls`` through ``Problem.run_iter`` (F with an explicit
    x-term, so that every method's first step is non-zero): finite results, the upper
    variables move, and no operator of the composition set an attribute on itself (what
    it keeps goes in its memory)."""
    import numpy as np

    problem, prob, _ = conformance_problem(cls, chain, registry)
    x0 = [v.numpy().copy() for v in problem.ul_var]
    ops = problem.composition.operators
    before = [dict(vars(op)) for op in ops]
    for it in range(2):
        record = problem.run_iter(prob.ll_feed, prob.ul_feed, it)
        assert np.isfinite(record["upper_loss"])
    for op, was in zip(ops, before):  # what an operator keeps goes in its memory
        changed = sorted(k for k, v in vars(op).items() if k not in was or was[k] is not v)
        assert not changed, (f"{type(op).name}: step set {', '.join(changed)} on the operator; "
                             "keep nothing on self between calls: return it in the memory of "
                             "what step returns (Result(memory=...) / state.replace(memory="
                             "...)), which the solver adopts after its checks and checkpoints")
    _check_grads(cls, problem, problem.evaluate(prob.ll_feed, prob.ul_feed, 2))
    moved = any(not np.array_equal(a, v.numpy()) for a, v in zip(x0, problem.ul_var))
    assert moved, f"{cls.name}: the upper variables did not move"


def _snapshot(problem) -> list:
    import numpy as np

    from ..numerics.optimstate import state_vars

    arrays = [v.numpy().copy() for v in problem.ll_var + problem.ul_var]
    arrays += [v.numpy().copy() for v in state_vars(problem.ll_opt) + state_vars(problem.ul_opt)]
    for name in sorted(problem.memories):
        for key in sorted(problem.memories[name]):
            arrays += [v.numpy().copy() for v in problem.memories[name][key]]
    return arrays


def check_finite_guard(cls, chain: list[str] | None = None, registry=None) -> None:
    """NaN injected in F, then in f, at outer iteration 1: ``run_iter`` raises
    ``DivergedError`` naming the operator and the outer iteration, and every variable,
    optimizer state and operator memory is bit-identical to before."""
    import numpy as np

    from ..errors import DivergedError

    for where in ("nan_F", "nan_f"):
        problem, prob, sw = conformance_problem(cls, chain, registry)
        problem.run_iter(prob.ll_feed, prob.ul_feed, 0)
        before = _snapshot(problem)
        setattr(sw, where, True)
        with pytest.raises(DivergedError, match=r"outer iteration 1") as info:
            problem.run_iter(prob.ll_feed, prob.ul_feed, 1)
        assert info.value.operator in problem.config.composition(), str(info.value)
        after = _snapshot(problem)
        assert len(after) == len(before) and all(
            np.array_equal(a, b) for a, b in zip(before, after)), \
            f"{cls.name}: a diverged iteration ({where}) changed the state"


#: Relative tolerance of the hyper-gradient operators' check (float64 against float64);
#: kept for 0.1 code that reads it (the tolerances are in ``jboat_core.testing.correctness``).
CORRECT_RTOL = 1e-5


def check_correct(cls, registry=None, lr: float = 0.1) -> str:
    """The operator's math, checked by default whatever its kind, in float64 through
    ``Problem`` against the targets of ``jboat_core.testing.correctness`` (tolerances
    stated there): a hyper-gradient operator against the unrolled, implicit or
    initialisation hyper-gradient (declared by ``approximates`` or inferred from its
    ``stage``; a wrong claim fails with a hint naming what to declare); a dynamics
    operator by RAD (and PTT + RAD) against central differences of F(y_K(x)) through its
    own dynamics, which must descend f; a first-order or stochastic solver by the
    direction it settles on against the exact hyper-gradient. Returns the target that
    matched; a pytest skip with the reason for an operator that declares
    ``unchecked = "why"``."""
    from .correctness import check

    return check(cls, registry)


def check_state_survives_resume(cls, chain: list[str] | None = None, registry=None) -> None:
    """Two outer iterations, then a new problem restored from ``state_dict`` (written
    through NumPy's ``savez`` as a checkpoint is, and checked against the fresh problem's
    ``state_schema`` as ``jboat run --resume`` checks it): the third iteration gives the same
    variables and upper loss as the original's third iteration (operator memory such as
    dual variables or auxiliary points included)."""
    import numpy as np

    from ..contract.stateschema import mismatch

    problem, prob, _ = conformance_problem(cls, chain, registry)
    for it in range(2):
        problem.run_iter(prob.ll_feed, prob.ul_feed, it)
    state = _through_npz(problem.state_dict())
    restored, prob2, _ = conformance_problem(cls, chain, registry)
    why = mismatch({k: v for k, v in state.items() if k != "history"},
                   restored.state_schema())
    assert why is None, (f"{cls.name}: jboat run --resume would refuse its checkpoint ({why});"
                         " an operator whose memory is not lists shaped like the lower or the "
                         "upper variables declares memory_schema")
    restored.load_state_dict(state)
    a = problem.run_iter(prob.ll_feed, prob.ul_feed, 2)
    b = restored.run_iter(prob2.ll_feed, prob2.ul_feed, 2)
    assert np.isclose(a["upper_loss"], b["upper_loss"], rtol=1e-6, atol=1e-7), (
        f"{cls.name}: upper loss after resume {b['upper_loss']} != {a['upper_loss']}")
    for x, y in zip(problem.ll_var + problem.ul_var, restored.ll_var + restored.ul_var):
        assert np.allclose(x.numpy(), y.numpy(), rtol=1e-6, atol=1e-7), (
            f"{cls.name}: a run resumed from a checkpoint diverges from the original "
            "(what the operator keeps across iterations goes in the memory of what step "
            "returns, never on self: checkpoints save the memories)")


def _through_npz(state):
    """``state`` with every NumPy array written to and read back from an ``.npz``."""
    import io

    import numpy as np

    arrays: list = []

    def out(value):
        if isinstance(value, np.ndarray):
            arrays.append(value)
            return ("__array__", len(arrays) - 1)
        if isinstance(value, dict):
            return {k: out(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(out(v) for v in value)
        return value

    skeleton = out(state)
    buf = io.BytesIO()
    np.savez(buf, *arrays)
    buf.seek(0)
    with np.load(buf) as data:
        back = [data[f"arr_{i}"] for i in range(len(arrays))]

    def inn(value):
        if isinstance(value, tuple) and len(value) == 2 and value[0] == "__array__":
            return back[value[1]]
        if isinstance(value, dict):
            return {k: inn(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return type(value)(inn(v) for v in value)
        return value

    return inn(skeleton)


def conformance_tests(cls, module: str | None = None, chain: list[str] | None = None,
                      run: bool = True, registry=None):
    """A pytest test class running every check on ``cls`` (any kind), composed in
    ``registry`` (default: the installed operators, plus ``cls`` when it is not
    installed)."""

    class _Conformance:
        def test_metadata(self):
            check_metadata(cls)

        def test_config_roundtrip(self):
            check_config_roundtrip(cls)

        def test_import_without_jittor(self):
            check_import_without_jittor(module or cls.__module__)

        if run:
            @pytest.mark.jittor
            def test_returns_hypergradients(self):
                check_returns_hypergradients(cls, chain, registry)

            @pytest.mark.jittor
            def test_runs_through_problem(self):
                check_runs_through_problem(cls, chain, registry)

            @pytest.mark.jittor
            def test_nan_changes_nothing(self):
                check_finite_guard(cls, chain, registry)

            @pytest.mark.jittor
            def test_state_survives_resume(self):
                check_state_survives_resume(cls, chain, registry)

            @pytest.mark.jittor
            def test_correct(self):
                matched = check_correct(cls, registry)
                print(f"{cls.name}: matched the {matched} target")

    _Conformance.__name__ = f"TestConformance{cls.__name__}"
    return _Conformance


def _with_preset(preset, registry=None):
    """``registry`` (default: the installed one) with ``preset`` registered too, as its
    plugin would register it (validated the same way)."""
    from ..plugins.registry import Origin, get_registry

    base = registry or get_registry()
    held = base.get_preset(preset.name)
    if held is not None and held.preset is preset:
        return base
    reg = base.with_classes([])  # a copy: operators, presets and components
    reg._register_preset(Origin(f"{preset.name}", "local", "local", "local"), preset)
    return reg


def check_preset(preset, registry=None) -> None:
    """A preset's declaration is valid, its config validates in ``registry`` (default:
    the installed operators plus the preset), and its composition runs through
    ``Problem.evaluate`` on the conformance ridge problem: one finite hyper-gradient per
    upper variable. The math of its operators is their own kit's check."""
    from ..platform._jittor import jittor
    from ..solver.problem import Problem
    from .problems import ridge_problem

    problems = preset.problems()
    assert not problems, f"preset {preset.name}: " + "; ".join(problems)
    reg = _with_preset(preset, registry)
    jt = jittor()
    prob = ridge_problem()
    sw = _Switch(prob, explicit_x=True)
    problem = Problem({"preset": preset.name}, ll_objective=sw.f, ul_objective=sw.F,
                      ll_model=prob.ll_model, ul_model=prob.ul_model,
                      ll_opt=jt.optim.SGD(prob.ll_var, 0.1),
                      ul_opt=jt.optim.Adam(prob.ul_var, 0.01), gda_loss=sw.gda,
                      registry=reg)
    _check_grads(type("P", (), {"name": preset.name}), problem,
                 problem.evaluate(prob.ll_feed, prob.ul_feed, 0))


def preset_tests(preset, module: str | None = None, registry=None):
    """A pytest test class for a plugin's preset: the module imports without Jittor and
    ``check_preset`` passes."""

    class _PresetConformance:
        def test_import_without_jittor(self):
            if module:
                check_import_without_jittor(module)

        @pytest.mark.jittor
        def test_runs_through_problem(self):
            check_preset(preset, registry)

    _PresetConformance.__name__ = f"TestPreset{preset.name}"
    return _PresetConformance

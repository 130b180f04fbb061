"""Linear solvers as components (issue 33.3): every solver on SPD, symmetric-indefinite
(where it applies) and non-symmetric systems in NumPy float64 against numpy.linalg.solve;
registration through the entry-point hook (a third party's too), lookup by name, the
one-line refusal of a symmetric-only solver on a non-symmetric system, and list-ops /
show-op. The Krylov and dense solvers run on NumPy arrays as on Jittor Vars; cg and
neumann (Jittor-only recurrences) run on float64 Jittor Vars.
"""

from __future__ import annotations

import json
import types

import numpy as np
import pytest

from jboat_core.contract import LinearSolver, hookimpl
from jboat_core.plugins.registry import Registry, set_registry
from jboat_core.run.cli import main
from jboat_ops.linear_solvers import SOLVERS

from fakeplugins import ep, make_module

N = 12


def _systems():
    rng = np.random.RandomState(7)
    Q, _ = np.linalg.qr(rng.randn(N, N))
    spd = (Q * np.linspace(0.5, 6.0, N)) @ Q.T
    indefinite = (Q * np.concatenate([-np.linspace(1, 3, N // 2),
                                      np.linspace(0.5, 5, N - N // 2)])) @ Q.T
    # non-symmetric, eigenvalues in the right half-plane (a proximal fixed point's
    # I - d_y T has this block form: identity off the support, eta H on it)
    nonsym = np.eye(N) * 2.0 + 0.4 * rng.randn(N, N)
    nonsym[: N // 3] = np.eye(N)[: N // 3]
    return {"spd": spd, "indefinite": indefinite, "nonsym": nonsym}, rng.randn(N)


#: Which systems each solver is correct for.
APPLIES = {
    "gmres": ("spd", "indefinite", "nonsym"), "bicgstab": ("spd", "indefinite", "nonsym"),
    "normal_cg": ("spd", "indefinite", "nonsym"), "dense": ("spd", "indefinite", "nonsym"),
    "minres": ("spd", "indefinite"),
}
CASES = [(name, kind) for name, kinds in APPLIES.items() for kind in kinds]


def _fn(name):
    return {s.name: s for s in SOLVERS}[name].load()


@pytest.mark.parametrize("name,kind", CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_solver_on_numpy_float64(name, kind):
    systems, b = _systems()
    A = systems[kind]
    want = np.linalg.solve(A, b)
    # the system given in two pieces (lists of arrays, as lower variables are)
    split = lambda v: [v[:5], v[5:].reshape(7, 1)]  # noqa: E731
    join = lambda xs: np.concatenate([np.ravel(x) for x in xs])  # noqa: E731
    x = _fn(name)(lambda v: split(A @ join(v)), split(b), rmatvec=lambda u: split(A.T @ join(u)),
                  maxiter=400, tol=1e-12)
    got = join(x)
    assert np.linalg.norm(got - want) <= 1e-9 * np.linalg.norm(want), (name, kind)


@pytest.mark.jittor
@pytest.mark.parametrize("name,kind", [("cg", "spd"), ("neumann", "spd"),
                                       ("neumann", "nonsym")])
def test_cg_and_neumann_on_jittor_float64(name, kind):
    from jboat_core import import_jittor

    jt = import_jittor()
    jt.flags.auto_convert_64_to_32 = 0
    systems, b = _systems()
    A = systems[kind]
    alpha = 1.0 / np.abs(np.linalg.eigvals(A)).max()
    if kind == "nonsym":  # a contraction: I - A / 3 has spectral radius < 1
        A = np.eye(N) - (np.eye(N) - A / 3.0) * 0.5
        alpha = 1.0
    Aj = jt.array(A, "float64")
    opts = {"maxiter": 3000 if name == "neumann" else 60, "tol": 1e-13}
    if name == "neumann":
        opts["alpha"] = alpha
    (x,) = _fn(name)(lambda v: [(Aj * v[0]).sum(1)], [jt.array(b, "float64")], **opts)
    want = np.linalg.solve(A, b)
    assert np.linalg.norm(x.numpy() - want) <= 1e-8 * np.linalg.norm(want)


def test_normal_cg_needs_the_transpose():
    from jboat_core.contract import OperatorRuntimeError

    with pytest.raises(OperatorRuntimeError, match="rmatvec"):
        _fn("normal_cg")(lambda v: v, [np.ones(3)])


def test_dense_refuses_a_large_system():
    from jboat_core.contract import OperatorRuntimeError

    with pytest.raises(OperatorRuntimeError, match="max_size"):
        _fn("dense")(lambda v: v, [np.ones(10)], max_size=5)


def _builtin_components():
    return Registry().with_components(SOLVERS, distribution="jboat")


def test_builtins_register_through_the_hook():
    mod = types.ModuleType("fake_solvers_builtin")
    mod.JBOAT_API_VERSION = 2
    import jboat_ops.linear_solvers as ls

    reg = Registry.from_entry_points([ep("linear_solvers", "jboat_ops.linear_solvers",
                                         "jboat", "0.2.0")])
    assert sorted(reg.components["linear_solver"]) == sorted(s.name for s in ls.SOLVERS)
    assert {"cg", "neumann", "normal_cg", "gmres", "bicgstab", "minres", "dense"} <= set(
        reg.components["linear_solver"])
    assert reg.component("linear_solver", "cg").requires_symmetric
    assert not reg.component("linear_solver", "gmres").requires_symmetric


def test_a_third_party_solver_registers_and_a_bad_one_is_reported():
    def body(mod):
        @hookimpl
        def jboat_register_linear_solvers(register):
            register(LinearSolver(name="my_solver", function="numpy:linalg",
                                  summary="mine", reference="me"))
            register(LinearSolver(name="Bad Name", function="x:y", summary="s",
                                  reference="r"))
        mod.jboat_register_linear_solvers = jboat_register_linear_solvers

    make_module("fake_solver_plugin", hook=False, body=body)
    reg = Registry.from_entry_points([ep("mine", "fake_solver_plugin", "my-dist", "1.2")])
    assert reg.component("linear_solver", "MY_SOLVER").name == "my_solver"
    (failure,) = reg.failures
    assert "my-dist" in str(failure.origin) and "Bad Name" in failure.error


def test_unknown_solver_lists_the_choices():
    from jboat_core import UnknownOperatorError

    with pytest.raises(UnknownOperatorError, match="valid choices: bicgstab, cg, dense"):
        _builtin_components().component("linear_solver", "lu")


def test_duplicate_name_keeps_the_builtin():
    reg = _builtin_components()
    clash = LinearSolver(name="gmres", function="numpy:linalg", summary="s", reference="r")
    reg = reg.with_components([clash], distribution="other")
    assert reg.component("linear_solver", "gmres").function != "numpy:linalg"
    assert any("already registered" in f.error for f in reg.failures)


def test_bound_solver_drops_options_it_does_not_take():
    from jboat_core.numerics.linsolve import BoundSolver

    spec = {s.name: s for s in SOLVERS}["dense"]
    bound = BoundSolver(spec, spec.load(), {"maxiter": 3, "check_every": 5, "alpha": 1.0})
    assert set(bound.options) == {"maxiter"}
    (x,) = bound(lambda v: [2.0 * v[0]], [np.ones(3)])
    assert np.allclose(x, 0.5)


def test_symmetric_only_solver_refuses_a_nonsymmetric_system_in_one_line():
    from jboat_core.contract import Optimality, OperatorRuntimeError
    from jboat_core.numerics.implicit import _refuse_nonsymmetric
    from jboat_core.numerics.linsolve import BoundSolver

    class Op:
        name = "CG"

    spec = {s.name: s for s in SOLVERS}["cg"]
    solve = BoundSolver(spec, spec.load(), {})
    fixed = Optimality.fixed_point(lambda y: y, name="PGD prox l1")
    with pytest.raises(OperatorRuntimeError) as info:
        _refuse_nonsymmetric(Op(), solve, fixed)
    msg = str(info.value)
    assert "\n" not in msg and "'cg'" in msg and "gmres" in msg and "PGD prox l1" in msg
    _refuse_nonsymmetric(Op(), solve, Optimality.gradient())  # symmetric: accepted
    gm = {s.name: s for s in SOLVERS}["gmres"]
    _refuse_nonsymmetric(Op(), BoundSolver(gm, gm.load(), {}), fixed)


@pytest.fixture
def components_registry():
    from jboat_ops.prox import PROX_MAPS

    reg = Registry.load().with_components(SOLVERS + PROX_MAPS, distribution="jboat")
    old = set_registry(reg)
    yield reg
    set_registry(old)


def test_list_ops_shows_the_components(components_registry, capsys):
    assert main(["list-ops"]) == 0
    out = capsys.readouterr().out
    assert "linear_solver" in out and "\ngmres " in out and "\nsimplex " in out
    assert main(["list-ops", "--kind", "linear_solver", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["name"] for r in rows} == {s.name for s in SOLVERS}
    assert all(r["kind"] == "linear_solver" and "requires_symmetric" in r for r in rows)
    assert main(["list-ops", "--json", "--verbose"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"l1", "gmres"} <= {c["name"] for c in data["components"]}


def test_show_op_describes_a_component(components_registry, capsys):
    assert main(["show-op", "gmres"]) == 0
    out = capsys.readouterr().out
    assert "Saad" in out and "any square" in out
    assert main(["show-op", "cg", "--kind", "linear_solver"]) == 0
    assert "symmetric only" in capsys.readouterr().out
    assert main(["show-op", "simplex", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["options"]["radius"][0] == 1.0

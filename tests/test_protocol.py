"""The typed step protocol (API 2), without Jittor: frozen states, one list of result
fields, abstract bases with one keyword-only constructor, memory in and out of ``step``,
and the compatibility wing's translation to JBOAT's keyword form (the seed classes,
API-1 adapters) with the seed's exact signatures."""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from jboat_core.compat import keywords
from jboat_core.compat.api1 import adapt
from jboat_core.compat.seed import SequentialHG, seed_class
from jboat_core.contract import (NO_MEMORY, OUTPUT_FIELDS, RESULT_FIELDS, ChainState,
                                 DynamicalSystem, DynamicsPlan, DynamicsState, FirstOrderSolver,
                                 HyperGradient, Operator, OperatorRuntimeError, Result,
                                 SolveState, result)
from jboat_core.errors import MetadataError
from jboat_core.plugins.registry import check_api
from jboat_core.solver.engine import run_chain, run_dynamics, step_operator

SEED = Path(__file__).resolve().parents[2] / "shared" / "seed" / "jboat_na_ol_api.txt"


class _Var:
    """A stand-in for a Var: only ``shape`` is read by the checks."""

    def __init__(self, *shape):
        self.shape = list(shape)


class _FModel:
    def parameters(self, time=None):
        return [f"y{time if time is not None else 'K'}"]


def test_states_are_frozen():
    state = ChainState({}, {}, _FModel())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.k_star = 3
    with pytest.raises(dataclasses.FrozenInstanceError):
        Result(0.0, []).ul_lr = 1.0
    assert state.replace(k_star=3).k_star == 3 and state.k_star == -1
    assert state.memory is NO_MEMORY and dict(NO_MEMORY) == {}
    with pytest.raises(TypeError, match="ChainState has no field 'nope'"):
        state.replace(nope=1)


def test_one_list_of_result_fields():
    names = tuple(f.name for f in dataclasses.fields(Result))
    assert RESULT_FIELDS == tuple(n for n in names if n not in ("memory", "checks", "info"))
    assert set(OUTPUT_FIELDS) <= set(RESULT_FIELDS)
    assert {"upper_loss", "hyper_gradients", "ll_init_gradients", "ll_update", "ll_gradients",
            "lower_loss", "ul_lr"} == set(RESULT_FIELDS)


def test_one_keyword_only_constructor_for_every_kind():
    for base in (HyperGradient, DynamicalSystem, FirstOrderSolver):
        params = list(inspect.signature(base.__init__).parameters.values())[1:]
        legacy, params = params[0], params[1:]  # *legacy: the 0.1 positions, deprecated
        assert legacy.kind is legacy.VAR_POSITIONAL
        assert all(p.kind is p.KEYWORD_ONLY for p in params), base
        assert [p.name for p in params] == ["ll_objective", "ul_objective", "ll_model",
                                            "ul_model", "ll_var", "ul_var", "lower_iters",
                                            "runtime", "config"]
        assert base.__abstractmethods__ == frozenset({"step"})
        assert issubclass(base, Operator)
        with pytest.raises(TypeError, match="abstract"):
            base()


def test_the_0_1_positional_constructors_warn_and_map_by_position():
    from jboat_ops.cg import CG
    from jboat_ops.ngd import NGD

    with pytest.warns(DeprecationWarning, match="by position is the 0.1 constructor.*0.3"):
        op = NGD("f", "F", "ll", "ul", 3, {"NGD": {}})
    assert (op.ll_objective, op.ul_model, op.ll_model, op.lower_iters) == ("f", "ul", "ll", 3)
    with pytest.warns(DeprecationWarning):   # HyperGradient's 0.1 order: ul_model first
        op = CG("f", "F", "ul", "ll", [], [], {"CG": {"k": 3}})
    assert (op.ul_model, op.ll_model, op.config.k) == ("ul", "ll", 3)
    with pytest.raises(TypeError, match="keyword arguments only"):
        CG(*range(8))


def test_chain_state_round_trips_through_jboat_keywords():
    fm = _FModel()
    state = ChainState({"a": 1}, {"b": 2}, fm, k_star=3, point=("p",), wrt=("w",),
                       ll_lr=0.1, init_gradients=True, current_iter=7, next_operation="RAD")
    kw = keywords.chain_kwargs(state, {"custom": 5})
    assert kw["ll_feed_dict"] == {"a": 1} and kw["auxiliary_model"] is fm
    assert kw["max_loss_iter"] == 3 and kw["lower_model_params"] == ["p"]
    assert kw["hparams"] == ["w"] and kw["custom"] == 5
    assert kw["hyper_gradient_finished"] is False
    back, extras = keywords.chain_state(kw)
    assert back == state and extras == {"custom": 5}


def test_chain_state_from_seed_call_needs_the_feeds():
    with pytest.raises(TypeError, match="auxiliary_model"):
        keywords.chain_state({"ll_feed_dict": {}, "ul_feed_dict": {}})
    s, _ = keywords.chain_state({"ll_feed_dict": {}, "ul_feed_dict": {},
                                 "auxiliary_model": _FModel(), "max_loss_iter": None})
    assert s.k_star == -1 and s.ll_point() == ["yK"]


def test_result_reads_as_jboats_dict():
    r = Result("F", ["g"], ul_lr=0.5)
    assert r["hyper_gradients"] == ["g"] and r.get("ll_update") is None
    assert r.get("ll_update", "x") == "x"
    d = keywords.result_dict(r)
    assert d["hyper_gradient_finished"] is True and d["ul_lr"] == 0.5
    assert keywords.result_from_dict(d) == r
    with pytest.raises(OperatorRuntimeError, match="MY: result: .*upper_loss"):
        keywords.result_from_dict({"hyper_gradients": []}, "MY")
    with pytest.raises(KeyError):
        r["hyper_gradient_finished"]
    with pytest.raises(KeyError):
        r["memory"]  # not a value of the iteration


def test_result_checks_one_gradient_per_upper_variable():
    class Op:
        name = "X"
        ul_var = [_Var(2, 3)]

    assert result(Op(), "F", [_Var(2, 3)]).upper_loss == "F"
    assert result(Op(), "F", [_Var(2, 3)], memory={"v": [1]}).memory == {"v": [1]}
    with pytest.raises(OperatorRuntimeError, match="X: result: computed 2 hyper-gradients"):
        result(Op(), "F", [_Var(2, 3), _Var(1)])
    with pytest.raises(OperatorRuntimeError, match=r"shape \[3\] but ul_var\[0\] has \[2, 3\]"):
        result(Op(), "F", [_Var(3)])


def test_plan_merge_and_gda_schedule():
    a = DynamicsPlan(track=True, truncate=2)
    b = DynamicsPlan(pessimistic=True, truncate=1)
    assert a.merge(b) == DynamicsPlan(track=True, pessimistic=True, truncate=2)
    seen = {}

    def gda_loss(ll, ul, ul_model, ll_model, **kw):
        seen.update(alpha=ll["alpha"], ul=ul)
        return 0.0

    f = object()
    user_feed = {"x": 1}
    state = DynamicsState(user_feed, {"u": 2}, None, None)
    assert state.objective_at(3, f) is f
    state = state.replace(aggregate=gda_loss, alpha_at=lambda k: 0.5 * 0.9 ** k)
    state.objective_at(2, f)(user_feed, None, None)
    assert seen["alpha"] == pytest.approx(0.405) and seen["ul"] == {"u": 2}
    assert "alpha" not in user_feed  # the user's dict is never modified
    kw = keywords.dynamics_kwargs(state)
    assert kw["alpha"] == 0.5 and kw["alpha_decay"] == pytest.approx(0.9)
    assert keywords.dynamics_updated(state, kw).alpha_at(2) == pytest.approx(0.405)


def test_renamed_fields_work_with_a_warning_until_03():
    with pytest.warns(DeprecationWarning, match="stop_inner_grads"):
        plan = DynamicsPlan().replace(first_order=True)
    assert plan.stop_inner_grads
    with pytest.warns(DeprecationWarning, match="DynamicsPlan.first_order is now"):
        assert plan.first_order is True
    state = ChainState({}, {}, _FModel(), ll_objective="f", ll_lr=0.1)
    with pytest.warns(DeprecationWarning, match="ll_point"):
        assert state.lower_point() == ["yK"]
    with pytest.warns(DeprecationWarning, match="ll_objective"):
        assert state.lower_objective == "f"


# -- memory: in the state, out in what step returns ---------------------------------------
class Counter(FirstOrderSolver):
    name, stage, role = "COUNT", "solve", "terminal"

    def step(self, state):
        n = state.memory.get("n", [0])[0] + 1
        return Result(n, [], memory={"n": [n]})


def test_memory_comes_in_the_state_and_goes_out_in_the_result():
    op = Counter()
    memories, pending = {}, {}
    out = step_operator(op, SolveState({}, {}), memories, pending)
    assert out.upper_loss == 1 and pending == {"COUNT": {"n": [1]}}
    assert "_legacy_memory" not in op.__dict__  # nothing kept on the operator
    memories.update(pending)
    assert step_operator(op, SolveState({}, {}), memories, {}).upper_loss == 2


class Legacy(FirstOrderSolver):
    """API 2 before 0.2: self.state and self.propose."""

    name, stage, role = "LEGACY", "solve", "terminal"

    def step(self, state):
        n = self.state.get("n", [0])[0] + 1
        self.propose(n=[_Detachable(n)])
        return Result(n, [])


class _Detachable(int):
    def detach(self):
        return self


def test_self_state_and_propose_still_work_with_a_warning():
    op, pending = Legacy(), {}
    with pytest.warns(DeprecationWarning, match="state.memory"):
        step_operator(op, SolveState({}, {}), {"LEGACY": {"n": [4]}}, pending)
    assert pending["LEGACY"]["n"] == [5]


# -- API versions -------------------------------------------------------------------------
class V2(HyperGradient):
    name, stage, role = "V2", "gradient", "terminal"

    def step(self, state):
        return Result("F", [])


class V1(HyperGradient):
    name, stage, role = "V1", "gradient", "terminal"

    def compute_gradients(self, **kwargs):
        return {"upper_loss": "F1", "hyper_gradient_finished": True, "hyper_gradients": [],
                "seen": sorted(kwargs)}


class V1Modifier(HyperGradient):
    name, stage, role = "V1M", "trajectory", "modifier"

    def compute_gradients(self, **kwargs):
        return {**kwargs, "lower_model_params": ["y3"], "custom": "kept"}


class Neither(HyperGradient):
    name, stage, role = "NONE", "gradient", "terminal"


def test_registry_takes_api2_adapts_api1_and_refuses_neither():
    assert check_api(V2, "dist") == (2, V2)
    version, adapted = check_api(V1, "dist")
    assert version == 1 and adapted.api1_original is V1 and adapted.api_version() == 1
    assert issubclass(adapted, V1) and not inspect.isabstract(adapted)
    with pytest.raises(MetadataError, match=r"dist: operator 'NONE' \(.*Neither\) does not "
                       r"implement step\(state\), abstract in jboat_core.contract."
                       r"HyperGradient"):
        check_api(Neither, "dist")


def test_seed_form_of_an_api2_operator():
    out = seed_class(V2)(None, None, None, None, [], [], {}).compute_gradients(
        ll_feed_dict={}, ul_feed_dict={}, auxiliary_model=_FModel())
    assert out["hyper_gradient_finished"] is True and out["upper_loss"] == "F"


def _built(cls):
    return adapt(cls)() if cls in (V1, V1Modifier) else cls()


def test_api1_operators_run_through_the_adapter_in_a_chain():
    chain = SequentialHG([_built(V1Modifier), _built(V1)], ["V1M", "V1"])
    res = chain.run(ChainState({}, {}, _FModel(), k_star=2))
    assert isinstance(res, Result) and res.upper_loss == "F1"
    seed = chain.compute_gradients(ll_feed_dict={}, ul_feed_dict={},
                                   auxiliary_model=_FModel())
    assert seed[0]["gradient_operator_results"]["upper_loss"] == "F1"


def test_chain_names_the_operator_that_broke_the_protocol():
    with pytest.raises(OperatorRuntimeError, match="V2: chain: returned Result but V1 follows"):
        run_chain([_built(V2), _built(V1)], ChainState({}, {}, _FModel()))
    with pytest.raises(OperatorRuntimeError, match="V1M: chain: is last in the chain but "
                       "returned ChainState"):
        run_chain([_built(V1Modifier)], ChainState({}, {}, _FModel()))


class Dyn1(DynamicalSystem):
    name, stage, role = "DYN1", "solve", "either"

    def optimize(self, **kwargs):
        self.lower_loss = "f_K"
        return 4


class Dyn2(DynamicalSystem):
    name, stage, role = "DYN2", "prepare", "modifier"

    def step(self, state):
        return state.replace(k_star=1)


def test_dynamics_of_both_versions_and_their_output():
    ops = [Dyn2(lower_iters=3), adapt(Dyn1)(lower_iters=3)]
    out = run_dynamics(ops, DynamicsState({}, {}, _FModel(), None))
    assert isinstance(out, DynamicsState) and out.k_star == 4 and out.lower_loss == "f_K"


class FO1(FirstOrderSolver):
    name, stage, role = "FO1", "solve", "terminal"

    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs):
        return {"upper_loss": current_iter, "hyper_gradients": []}


def test_first_order_adapter():
    assert adapt(FO1)().step(SolveState({}, {}, 5)) == Result(5, [])
    assert adapt(V2) is None  # not an API-1 class


# -- the seed's signatures, positions and defaults included -------------------------------
def _seed_signatures() -> dict:
    """``{qualified name: [(parameter, default or None)]}`` from the seed API text: its
    classes (the constructor), their methods and the module functions."""
    out, cls = {}, None
    for line in SEED.read_text().splitlines():
        m = re.match(r"(class |abstract )?([\w.]+)\((.*)\)\[source\]$", line.strip())
        if not m:
            continue
        prefix, name, params = m.groups()
        if "." in name:  # a class or a module function, fully qualified
            cls = name if prefix == "class " else cls
            out[name] = _params(params)
        else:  # a method of the last class
            out[f"{cls}.{name}"] = _params(params)
    return out


def _params(text: str) -> list:
    params = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        name, _, default = part.partition("=")
        params.append((name.strip(), default.strip() or None))
    return params


def _actual(obj) -> list:
    out = []
    for p in inspect.signature(obj).parameters.values():
        if p.name == "self":
            continue
        name = {p.VAR_KEYWORD: f"**{p.name}", p.VAR_POSITIONAL: f"*{p.name}"}.get(p.kind,
                                                                                  p.name)
        out.append((name, None if p.default is p.empty else repr(p.default)))
    return out


def test_seed_signatures_are_kept_with_positions_and_defaults(builtin_registry):
    """Every signature of the seed API text (``shared/seed/jboat_na_ol_api.txt``): the
    names, their positions and their defaults (RAD's ``compute_gradients`` has no
    ``hyper_gradient_finished``: a positional call binds ``next_operation`` fifth)."""
    import importlib

    signatures = _seed_signatures()
    assert len(signatures) >= 24, sorted(signatures)
    checked = 0
    for qualname, params in signatures.items():
        parts = qualname.split(".")
        for cut in range(len(parts) - 1, 1, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        target = obj.__init__ if inspect.isclass(obj) else obj
        assert _actual(target) == params, qualname
        checked += 1
    assert checked == len(signatures)
    from jboat.na_ol.rad import RAD

    assert [n for n, _ in _actual(RAD.compute_gradients)][4] == "next_operation"

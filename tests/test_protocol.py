"""The typed step protocol (API 2) and its translation to JBOAT's keyword form, without
Jittor: frozen states, one list of result fields, the API-1 bridges, the plan merge, and
how the registry and the chain treat API-1 and API-2 classes."""

from __future__ import annotations

import dataclasses

import pytest

from jboat_core.contract import (OUTPUT_FIELDS, RESULT_FIELDS, ChainState, DynamicalSystem,
                                 DynamicsPlan, DynamicsState, FirstOrderSolver,
                                 HyperGradientOperator, OperatorRuntimeError, Result,
                                 SolveState, result)
from jboat_core.plugins.registry import check_api
from jboat_core.errors import MetadataError
from jboat_core.solver.sequential import SequentialHG, run_dynamics


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


def test_one_list_of_result_fields():
    assert RESULT_FIELDS == tuple(f.name for f in dataclasses.fields(Result))
    assert set(OUTPUT_FIELDS) <= set(RESULT_FIELDS)
    assert {"upper_loss", "hyper_gradients", "ll_init_gradients", "ll_update", "ll_gradients",
            "lower_loss", "ul_lr"} == set(RESULT_FIELDS)


def test_chain_state_round_trips_through_jboat_keywords():
    fm = _FModel()
    state = ChainState({"a": 1}, {"b": 2}, fm, k_star=3, point=("p",), wrt=("w",),
                       ll_lr=0.1, init_gradients=True, current_iter=7, next_operation="RAD",
                       extras={"custom": 5})
    kw = state.as_kwargs()
    assert kw["ll_feed_dict"] == {"a": 1} and kw["auxiliary_model"] is fm
    assert kw["max_loss_iter"] == 3 and kw["lower_model_params"] == ["p"]
    assert kw["hparams"] == ["w"] and kw["custom"] == 5
    assert kw["hyper_gradient_finished"] is False
    assert ChainState.from_kwargs(kw) == state


def test_chain_state_from_seed_call_needs_the_feeds():
    with pytest.raises(TypeError, match="auxiliary_model"):
        ChainState.from_kwargs({"ll_feed_dict": {}, "ul_feed_dict": {}})
    s = ChainState.from_kwargs({"ll_feed_dict": {}, "ul_feed_dict": {},
                                "auxiliary_model": _FModel(), "max_loss_iter": None})
    assert s.k_star == -1 and s.lower_point() == ["yK"]


def test_result_reads_as_jboats_dict():
    r = Result("F", ["g"], ul_lr=0.5)
    assert r["hyper_gradients"] == ["g"] and r.get("ll_update") is None
    assert r.get("ll_update", "x") == "x"
    d = r.as_dict()
    assert d["hyper_gradient_finished"] is True and d["ul_lr"] == 0.5
    assert Result.from_dict(d) == r
    with pytest.raises(OperatorRuntimeError, match="MY: result: .*upper_loss"):
        Result.from_dict({"hyper_gradients": []}, "MY")
    with pytest.raises(KeyError):
        r["hyper_gradient_finished"]


def test_result_checks_one_gradient_per_upper_variable():
    class Op:
        name = "X"
        ul_var = [_Var(2, 3)]

    assert result(Op(), "F", [_Var(2, 3)]).upper_loss == "F"
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
    kw = state.as_kwargs()
    assert kw["alpha"] == 0.5 and kw["alpha_decay"] == pytest.approx(0.9)
    assert state.updated_from(kw).alpha_at(2) == pytest.approx(0.405)


# -- API versions -------------------------------------------------------------------------
class V2(HyperGradientOperator):
    name, stage, role = "V2", "gradient", "terminal"

    def step(self, state):
        return Result("F", [])


class V1(HyperGradientOperator):
    name, stage, role = "V1", "gradient", "terminal"

    def compute_gradients(self, **kwargs):
        return {"upper_loss": "F1", "hyper_gradient_finished": True, "hyper_gradients": [],
                "seen": sorted(kwargs)}


class V1Modifier(HyperGradientOperator):
    name, stage, role = "V1M", "trajectory", "modifier"

    def compute_gradients(self, **kwargs):
        return {**kwargs, "lower_model_params": ["y3"], "custom": "kept"}


class Neither(HyperGradientOperator):
    name, stage, role = "NONE", "gradient", "terminal"


def _op(cls):
    return cls(None, None, None, None, [], [], {})


def test_api_version_is_what_the_class_implements():
    assert V2.api_version() == 2 and V1.api_version() == 1 and Neither.api_version() == 0
    assert check_api(V2, "dist") == 2 and check_api(V1, "dist") == 1
    with pytest.raises(MetadataError, match="'NONE' implements neither step"):
        check_api(Neither, "dist")


def test_seed_form_of_an_api2_operator():
    out = _op(V2).compute_gradients(ll_feed_dict={}, ul_feed_dict={},
                                    auxiliary_model=_FModel())
    assert out["hyper_gradient_finished"] is True and out["upper_loss"] == "F"


def test_api1_operators_run_through_the_adapter_in_a_chain():
    chain = SequentialHG([_op(V1Modifier), _op(V1)], ["V1M", "V1"])
    res = chain.run(ChainState({}, {}, _FModel(), k_star=2))
    assert isinstance(res, Result) and res.upper_loss == "F1"
    seed = chain.compute_gradients(ll_feed_dict={}, ul_feed_dict={},
                                   auxiliary_model=_FModel())
    assert seed[0]["gradient_operator_results"]["upper_loss"] == "F1"


def test_chain_names_the_operator_that_broke_the_protocol():
    chain = SequentialHG([_op(V2), _op(V1)], ["V2", "V1"])
    with pytest.raises(OperatorRuntimeError, match="V2: chain: returned Result but V1 follows"):
        chain.run(ChainState({}, {}, _FModel()))
    chain = SequentialHG([_op(V1Modifier)], ["V1M"])
    with pytest.raises(OperatorRuntimeError, match="V1M: chain: is last in the chain but "
                       "returned ChainState"):
        chain.run(ChainState({}, {}, _FModel()))
    with pytest.raises(NotImplementedError, match="NONE: implement step"):
        _op(Neither).step(ChainState({}, {}, _FModel()))


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
    ops = [Dyn2(None, None, None, None, 3, {}), Dyn1(None, None, None, None, 3, {})]
    out = run_dynamics(ops, DynamicsState({}, {}, _FModel(), None))
    assert isinstance(out, DynamicsState) and out.k_star == 4 and out.lower_loss == "f_K"


class FO1(FirstOrderSolver):
    name, stage, role = "FO1", "solve", "terminal"

    def optimize(self, ll_feed_dict, ul_feed_dict, current_iter=0, **kwargs):
        return {"upper_loss": current_iter, "hyper_gradients": []}


def test_first_order_adapter():
    op = FO1(None, None, None, None, 1, [], [], {})
    assert op.step(SolveState({}, {}, 5)) == Result(5, [])


def test_seed_signatures_are_kept():
    """``jboat.na_ol.cg.CG`` and the other seed operators keep the seed's constructor and
    ``compute_gradients`` signature (``shared/seed/jboat_na_ol_api.txt``)."""
    import inspect

    from jboat.na_ol.cg import CG
    from jboat_core.contract import HyperGradient

    seed = ["self", "ll_feed_dict", "ul_feed_dict", "auxiliary_model", "max_loss_iter",
            "hyper_gradient_finished", "next_operation", "kwargs"]
    assert list(inspect.signature(CG.compute_gradients).parameters) == seed
    assert list(inspect.signature(CG.__init__).parameters) == [
        "self", "ll_objective", "ul_objective", "ll_model", "ul_model", "ll_var", "ul_var",
        "solver_config"]
    assert list(inspect.signature(HyperGradient.compute_gradients).parameters) == [
        "self", "kwargs"]
    assert list(inspect.signature(HyperGradient.__init__).parameters) == [
        "self", "ll_objective", "ul_objective", "ul_model", "ll_model", "ll_var", "ul_var",
        "solver_config"]

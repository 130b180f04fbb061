"""The conformance kit over every built-in component (linear solvers and prox maps, from
jboat's own declarations, not from what is installed), and mutants it must refuse: a
solver that returns b, a symmetric-only method not declaring it, an expanding prox, a
prox whose mask cuts the graph."""

from __future__ import annotations

import dataclasses

import pytest

from jboat_core.contract import LinearSolver, ProxMap
from jboat_core.testing.components import check_component, component_tests
from jboat_ops.linear_solvers import SOLVERS
from jboat_ops.prox import PROX_MAPS

for _decl in (*SOLVERS, *PROX_MAPS):
    globals()[f"TestComponent_{_decl.name}"] = component_tests(_decl)


def _identity_solver(matvec, b, *, rmatvec=None, maxiter=10, tol=0.0):
    return list(b)


def _expanding(z, t):
    from jboat_ops.prox import l1
    return l1(z, t) * 1.5


def _graph_cut(z, t):
    from jboat_ops.prox import l1
    return l1(z, t).detach() + z * 0.0


_REF = "the kit's mutant"


@pytest.mark.jittor
@pytest.mark.parametrize("decl, message", [
    (LinearSolver(name="ident", function=_identity_solver, summary="x", reference=_REF),
     "relative error"),
    (dataclasses.replace(SOLVERS[0], name="cg_any", requires_symmetric=False),
     "must declare requires_symmetric"),
    (ProxMap(name="expand", function=_expanding, summary="x", reference=_REF),
     "not firmly non-expansive"),
    (ProxMap(name="cut", function=_graph_cut, summary="x", reference=_REF),
     "reverse mode in z"),
], ids=["identity-solver", "cg-undeclared-symmetric", "expanding-prox", "graph-cut-prox"])
def test_mutants_are_refused(decl, message):
    with pytest.raises(AssertionError, match=message):
        check_component(decl)

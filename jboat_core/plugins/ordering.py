"""Execution order and validity of operator chains, derived from declared metadata.

No table of operator names lives here: the default order is built from the registered
operators' ``stage`` and ``order``, and every rule below reads the operators' ``role``,
``followed_by``, ``requires_any`` and ``conflicts``.

Rules (identifier: meaning)
---------------------------
unknown-operator   every name must be registered (and present in ``gradient_order``)
empty-chain        a chain needs at least one operator
modifier-last      a ``modifier`` must be followed by another operator
terminal-not-last  a ``terminal`` operator must end its chain (so two terminals never mix)
followed-by        an ``either`` operator may only be followed by its ``followed_by`` stages
requires           an operator's ``requires_any`` must meet the composition
conflicts          an operator's ``conflicts`` must not appear in the composition
one-solver         a kind that does not chain (first-order solvers) takes exactly one
first-order-alone  a first-order solver replaces the dynamics and hyper-gradient chains:
                   ``fo_op`` cannot be combined with ``gm_op``/``na_op``
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..errors import ChainError, UnknownOperatorError
from ..contract.kinds import KINDS, STAGES
from ..contract.metadata import split_names
from .registry import OperatorRecord, Registry, get_registry


def default_gradient_order(kind: str = "hypergradient",
                           registry: Registry | None = None) -> list[list[str]]:
    """Groups of operator names by stage (stage rank, then ``order``, then name).

    With the built-ins this is ``[["PTT", "FOA", "RGT"], ["IAD", "RAD", "FD", "IGA"],
    ["CG", "NS"]]``; a third-party operator slots in by its declared stage.
    """
    reg = registry or get_registry()
    groups: list[list[str]] = [[] for _ in STAGES[kind]]
    for rec in reg.records(kind):
        groups[STAGES[kind].index(rec.cls.stage)].append(rec.name)
    return [g for g in groups if g]


def _canonical(names: Iterable[str], gradient_order: Sequence[Sequence[str]],
               registry: Registry, kind: str) -> list[str]:
    if isinstance(names, str):
        names = split_names(names)
    known = {n.upper(): n for group in gradient_order for n in group}
    out: list[str] = []
    for raw in names:
        if not isinstance(raw, str):
            raise ChainError(f"operator names must be strings, got {raw!r}",
                             rule="unknown-operator", choices=tuple(known.values()), kind=kind)
        name = known.get(raw.strip().upper())
        if name is None:
            choices = tuple(known.values())
            hint = ""
            try:
                rec = registry.get(raw)
                hint = f" ({raw!r} is a {rec.kind} operator, not a {kind} one)"
            except UnknownOperatorError:
                pass
            raise ChainError(f"unknown {KINDS[kind].label} {raw!r}{hint}; valid choices: "
                             f"{', '.join(choices)}", operator=raw, rule="unknown-operator",
                             choices=choices, kind=kind)
        if name not in out:
            out.append(name)
    return out


def validate_and_adjust_order(custom_order, gradient_order=None, *, kind: str = "hypergradient",
                              registry: Registry | None = None) -> list[str]:
    """Validate a user's operator list and return it in execution order.

    Parameters
    ----------
    custom_order : list of str (or a comma-separated string)
        Operator names, any order, case-insensitive; duplicates appear once.
    gradient_order : list of list of str, optional
        Groups in execution order; default ``default_gradient_order(kind)``.
    kind : str
        A key of ``jboat_core.contract.kinds.KINDS`` (``"hypergradient"``, ``"dynamics"``,
        ``"first_order"``).
    registry : Registry, optional

    Returns
    -------
    list of str
        The canonical names, group by group.

    Raises
    ------
    ChainError
        One error per broken rule, naming the operator, the rule and the valid choices.
    """
    reg = registry or get_registry()
    if gradient_order is None:
        gradient_order = default_gradient_order(kind, reg)
    names = _canonical(custom_order, gradient_order, reg, kind)
    if not names:
        first = [g[0] for g in gradient_order if g]
        raise ChainError(f"the {kind} chain is empty (rule empty-chain); choose operators "
                         f"among {', '.join(n for g in gradient_order for n in g)}",
                         rule="empty-chain", choices=tuple(first), kind=kind)
    if not KINDS[kind].chain and len(names) > 1:
        raise ChainError(f"{KINDS[kind].config_key} names {len(names)} {KINDS[kind].label}s "
                         f"({', '.join(names)}) but takes exactly one (rule one-solver); "
                         f"keep one of them", operator=names[1], rule="one-solver",
                         choices=tuple(names), kind=kind)
    rank = {n: (gi, i) for gi, group in enumerate(gradient_order) for i, n in enumerate(group)}
    ordered = sorted(names, key=rank.__getitem__)
    records = _records_or_none(ordered, reg)
    if records is not None:
        check_chain(records, reg)
    return ordered


def _records_or_none(names: list[str], reg: Registry) -> list[OperatorRecord] | None:
    try:
        return [reg.get(n) for n in names]
    except UnknownOperatorError:
        return None  # a custom gradient_order naming unregistered operators: order only


def _desc(rec: OperatorRecord) -> str:
    c = rec.cls
    return (f"{c.name} (stage {c.stage!r}, role {c.role!r}, from {rec.origin.distribution} "
            f"{rec.origin.version})")


def check_chain(records: list[OperatorRecord], registry: Registry) -> None:
    """Apply the role rules to one chain already in execution order."""
    kind = records[0].kind
    for i, rec in enumerate(records):
        nxt = records[i + 1] if i + 1 < len(records) else None
        c = rec.cls
        if c.role == "modifier" and nxt is None:
            finishers = tuple(r.name for r in registry.records(kind) if r.cls.role != "modifier")
            raise ChainError(
                f"{_desc(rec)} must be followed by another {kind} operator (rule "
                f"modifier-last): it only prepares the computation. Add one of: "
                f"{', '.join(finishers)}", operator=c.name, rule="modifier-last",
                choices=finishers)
        if nxt is None:
            continue
        if c.role == "terminal":
            both = " two terminal operators:" if nxt.cls.role == "terminal" else ""
            raise ChainError(
                f"{_desc(rec)} must be the last operator of its chain but is followed by "
                f"{nxt.name} (rule terminal-not-last;{both} each computes the whole "
                f"hyper-gradient). Keep one of {c.name} and {nxt.name}",
                operator=c.name, rule="terminal-not-last", choices=(c.name, nxt.name))
        if c.role == "either" and nxt.cls.stage not in c.followed_by:
            ok = tuple(r.name for r in registry.records(kind) if r.cls.stage in c.followed_by)
            raise ChainError(
                f"{_desc(rec)} may only be followed by an operator of stage "
                f"{' or '.join(map(repr, c.followed_by))}, not by {_desc(nxt)} (rule "
                f"followed-by). Use {c.name} last, or follow it with one of: {', '.join(ok)}",
                operator=c.name, rule="followed-by", choices=ok)
    check_composition(records, registry, kinds=(kind,))


def kind_of_name(name: str, registry: Registry) -> str | None:
    """The kind of the registered operator ``name`` (None when unknown or empty)."""
    try:
        return registry.get(name).kind if name else None
    except UnknownOperatorError:
        return None


def check_composition(records: list[OperatorRecord], registry: Registry,
                      kinds: tuple[str, ...] = tuple(KINDS)) -> None:
    """Apply ``requires_any`` and ``conflicts`` over a composition, counting only the
    required/conflicting operators of ``kinds`` (one chain, or both)."""
    present = {r.name.upper() for r in records}
    for rec in records:
        c = rec.cls
        required = {n.upper() for n in c.requires_any if kind_of_name(n, registry) in kinds}
        if required and not present & required:
            raise ChainError(
                f"{_desc(rec)} needs one of {', '.join(c.requires_any)} in the composition "
                f"(rule requires). Add one of them, or remove {c.name}",
                operator=c.name, rule="requires", choices=tuple(c.requires_any))
        clash = [n for n in c.conflicts if n.upper() in present]
        if clash:
            raise ChainError(
                f"{_desc(rec)} cannot be combined with {', '.join(clash)} (rule conflicts). "
                f"Remove {c.name} or {', '.join(clash)}",
                operator=c.name, rule="conflicts", choices=tuple(clash))


def _given(names) -> bool:
    return bool(split_names(names))


def validate_composition(gm_op, na_op, registry: Registry | None = None, fo_op=None
                         ) -> tuple[list[str], list[str]] | tuple[list[str], list[str], list[str]]:
    """Order and validate the composition: both chains and the rules that span them, or
    a single first-order solver.

    Returns
    -------
    (gm_order, na_order), or (gm_order, na_order, fo_order) when ``fo_op`` is passed
    (``fo_order`` is empty unless a first-order solver is chosen; then the chains are).
    """
    reg = registry or get_registry()
    if _given(fo_op):
        fo = validate_and_adjust_order(fo_op, kind="first_order", registry=reg)
        others = [k for k, v in (("gm_op", gm_op), ("na_op", na_op)) if _given(v)]
        if others:
            rec = reg.get(fo[0])
            raise ChainError(
                f"{_desc(rec)} replaces the dynamics and hyper-gradient chains but "
                f"{' and '.join(others)} {'are' if len(others) > 1 else 'is'} also set (rule "
                f"first-order-alone). Remove {' and '.join(others)}, or remove fo_op",
                operator=rec.name, rule="first-order-alone", choices=tuple(others))
        check_composition([reg.get(fo[0])], reg)
        return [], [], fo
    gm = validate_and_adjust_order(gm_op, kind="dynamics", registry=reg)
    na = validate_and_adjust_order(na_op, kind="hypergradient", registry=reg)
    check_composition([reg.get(n) for n in gm + na], reg)
    if fo_op is not None:
        return gm, na, []
    return gm, na

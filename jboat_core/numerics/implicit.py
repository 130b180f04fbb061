"""Implicit-function-theorem hyper-gradient with a pluggable linear solver.

For y ~ y*(x) = argmin_y f(x, y):

    g_h = grad_h F(x, y) - (d^2 f / dh dy) v,    v = solve(H, grad_y F(x, y)),   H = d^2 f / dy^2

(Pedregosa 2016; Lorraine et al. 2020; the JAXopt/TorchOpt ``solve(matvec, b)`` design).
The formula is evaluated at a *detached* copy of y: an implicit operator never adds the
gradient through the unrolled trajectory on top of its implicit correction (upstream
double-counted when PTT or IAD had turned tracking on).

Cost: one gradient of f and one of F, the solver's matvecs (one HVP each) and one mixed
second-derivative product: about k + 2 Hessian-vector products for k solver iterations.
"""

from __future__ import annotations

from .autodiff import check_scalar, constant, detach, grads, linear_operator, vdot


def implicit_hypergradient(op, ll_feed_dict, ul_feed_dict, auxiliary_model, y, hparams,
                           solve, ll_objective=None, damping: float = 0.0):
    """Return ``(F, [g_h per hparam])`` for the operator ``op`` (a ``HyperGradient``).

    Parameters
    ----------
    op : HyperGradient
        Supplies the objectives, the upper model and its name for error messages.
    y : list of jittor.Var
        Lower-level point (e.g. y_K, or y_{k*} after PTT); detached here.
    hparams : list of jittor.Var
        Variables to differentiate with respect to (``ul_var``, or the initialisation
        after IAD).
    solve : callable
        ``solve(matvec, b) -> x`` for ``H x = b``.
    ll_objective : callable, optional
        Lower objective to differentiate (default ``op.ll_objective``; GDA passes phi_alpha).
    damping : float
        lambda >= 0: solve (H + lambda I) v = grad_y F instead (an indefinite or singular
        Hessian of a nonconvex lower level; the hyper-gradient is then biased towards
        the first-order term).
    """
    name = type(op).name
    f_obj = ll_objective or op.ll_objective
    yd = detach(y)
    f = check_scalar(f_obj(ll_feed_dict, op.ul_model, auxiliary_model, params=yd),
                     name, "lower objective at y")
    F = check_scalar(op.ul_objective(ul_feed_dict, op.ul_model, auxiliary_model, params=yd),
                     name, "upper objective at y")
    n = len(yd)
    par = op.runtime.parallel
    dF = grads(F, yd + list(hparams), name, "grad F")
    b, c = par.data_mean(detach(dF[:n])), dF[n:]
    gy = grads(f, yd, name, "grad f")
    matvec = linear_operator(gy, yd)
    if par.active:  # H v = the mean over processes of their Hessian-vector products
        local = matvec
        matvec = lambda v: par.data_mean(local(v))  # noqa: E731
    if damping:
        hvp = matvec
        matvec = lambda v: [h + vi * constant(damping, vi)  # noqa: E731
                            for h, vi in zip(hvp(v), v)]
    v = solve(matvec, b)
    mixed = grads(vdot(gy, detach(v)), hparams, name, "mixed second derivative")
    return F.detach(), [(ci - mi).detach() for ci, mi in zip(c, mixed)]


def implicit_step(op, state, solve, damping: float = 0.0):
    """The whole ``step`` of an implicit terminal operator (CG, NS, or a plugin's), API 2:
    evaluate at ``state.point`` (PTT) with respect to ``state.wrt`` (IAD) or ``ul_var``,
    differentiate the objective the dynamics descended (GDA), add DI's gradient when
    asked, and return the checked ``Result``.

    Parameters
    ----------
    op : HyperGradient
    state : ChainState
    solve : callable
        ``solve(matvec, b) -> x`` for ``H x = b``: ``b`` and ``x`` are lists of Vars
        shaped like the lower variables; ``matvec`` maps such a list to H times it
        (detached: one Hessian-vector product per call). ``x`` need not be
        differentiable (it is detached before use).
    damping : float
        lambda >= 0: solve (H + lambda I) v = grad_y F.
    """
    from .autodiff import terminal_result

    y = state.ll_point()
    wrt = list(state.wrt) if state.wrt is not None else op.ul_var
    F, g = implicit_hypergradient(op, state.ll_feed, state.ul_feed, state.fmodel, y, wrt,
                                  solve, state.ll_objective, damping)
    return terminal_result(op, state, F, g, y, wrt)

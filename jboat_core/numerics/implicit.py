"""Implicit-function-theorem hyper-gradient with a pluggable linear solver.

For y ~ y*(x) characterised by the optimality condition the dynamics declared
(``jboat_core.contract.Optimality``; none declared: the gradient form):

* gradient form, grad_y f(x, y*) = 0 (NGD)::

    g_h = grad_h F(x, y) - (d^2 f / dh dy) v,    H v = grad_y F(x, y),   H = d^2 f / dy^2

* fixed point y* = T(x, y*) (PGD's proximal step, a user's map)::

    g_h = grad_h F + (d_h T)^T v,    (I - d_y T)^T v = grad_y F

* root G(x, y*) = 0::

    g_h = grad_h F - (d_h G)^T v,    (d_y G)^T v = grad_y F

(Pedregosa 2016; Lorraine et al. 2020; Blondel et al. 2022, the JAXopt/TorchOpt
``solve(matvec, b)`` design). The formula is evaluated at a *detached* copy of y: an
implicit operator never adds the gradient through the unrolled trajectory on top of its
implicit correction (upstream double-counted when PTT or IAD had turned tracking on).

Cost: one gradient of f (or one evaluation of the map) and one of F, the solver's matvecs
(one vector-Jacobian product each) and one mixed product: about k + 2 Hessian-vector
products for k solver iterations.
"""

from __future__ import annotations

from ..errors import OperatorRuntimeError
from .autodiff import check_scalar, constant, detach, grads, linear_operator, vdot


def _transpose_operator(outputs, inputs, minus_identity: bool):
    """``v -> J^T v`` (``minus_identity``: ``v - J^T v``) and its transpose ``u -> J u``
    (by the double-backward trick: J u = d/dw <J^T w, u>), for J = d outputs / d inputs;
    both detached (one or two reverse passes per call)."""
    import jittor as jt

    def matvec(v):
        jv = detach(grads(vdot(outputs, detach(v)), inputs))
        return [vi - a for vi, a in zip(v, jv)] if minus_identity else jv

    def rmatvec(u):
        w = [jt.zeros(o.shape, o.dtype) for o in outputs]
        for wi in w:
            wi.start_grad()
        jtw = grads(vdot(outputs, w), inputs)
        ju = detach(grads(vdot(jtw, detach(u)), w))
        return [ui - a for ui, a in zip(u, ju)] if minus_identity else ju

    return matvec, rmatvec


def _refuse_nonsymmetric(op, solve, optimality) -> None:
    """One line when a solver that needs a symmetric matrix meets a declared system that
    is not symmetric."""
    spec = getattr(solve, "spec", None)
    if spec is None or not spec.requires_symmetric or optimality.symmetric:
        return
    raise OperatorRuntimeError(
        type(op).name, "linear solver",
        f"{spec.name!r} needs a symmetric system but the dynamics declare "
        f"{optimality.name!r} ({optimality.form}), whose system is not symmetric; set "
        f"{type(op).name}.linear_solver to one for general systems (gmres, bicgstab, "
        "normal_cg, dense, neumann)")


def implicit_hypergradient(op, ll_feed_dict, ul_feed_dict, auxiliary_model, y, hparams,
                           solve, ll_objective=None, damping: float = 0.0, optimality=None):
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
        ``solve(matvec, b) -> x`` for ``A x = b`` (``A`` the transposed system matrix);
        a solver bound by ``linear_solver`` also receives ``rmatvec`` (``u -> A^T u``)
        and refuses a non-symmetric system when it needs symmetry.
    ll_objective : callable, optional
        Lower objective to differentiate (default ``op.ll_objective``; GDA passes phi_alpha).
    damping : float
        lambda >= 0: solve (A + lambda I) v = grad_y F instead (an indefinite or singular
        Hessian of a nonconvex lower level; the hyper-gradient is then biased towards
        the first-order term).
    optimality : Optimality, optional
        The declared condition (module docstring); None: the gradient form.
    """
    name = type(op).name
    yd = detach(y)
    F = check_scalar(op.ul_objective(ul_feed_dict, op.ul_model, auxiliary_model, params=yd),
                     name, "upper objective at y")
    n = len(yd)
    par = op.runtime.parallel
    dF = grads(F, yd + list(hparams), name, "grad F")
    b, c = par.data_mean(detach(dF[:n])), dF[n:]
    form = optimality.form if optimality is not None else "gradient"
    if optimality is not None:
        _refuse_nonsymmetric(op, solve, optimality)
    if form == "gradient":
        f_obj = ll_objective or op.ll_objective
        f = check_scalar(f_obj(ll_feed_dict, op.ul_model, auxiliary_model, params=yd),
                         name, "lower objective at y")
        outputs = grads(f, yd, name, "grad f")
        matvec, rmatvec = linear_operator(outputs, yd), None
    else:
        outputs = list(optimality.map(yd))
        if len(outputs) != n:
            raise OperatorRuntimeError(name, "optimality", f"{optimality.name!r} returned "
                                       f"{len(outputs)} values for {n} lower variables")
        matvec, rmatvec = _transpose_operator(outputs, yd, form == "fixed_point")
    if par.active:  # A v = the mean over processes of their products
        local, rlocal = matvec, rmatvec
        matvec = lambda v: par.data_mean(local(v))  # noqa: E731
        if rlocal is not None:
            rmatvec = lambda v: par.data_mean(rlocal(v))  # noqa: E731
    if damping:
        plain, rplain = matvec, rmatvec
        matvec = lambda v: [h + vi * constant(damping, vi)  # noqa: E731
                            for h, vi in zip(plain(v), v)]
        if rplain is not None:
            rmatvec = lambda v: [h + vi * constant(damping, vi)  # noqa: E731
                                 for h, vi in zip(rplain(v), v)]
    if getattr(solve, "spec", None) is not None:
        v = solve(matvec, b, rmatvec=rmatvec)
    else:
        v = solve(matvec, b)
    mixed = grads(vdot(outputs, detach(v)), hparams, name, "mixed second derivative")
    if form == "fixed_point":
        return F.detach(), [(ci + mi).detach() for ci, mi in zip(c, mixed)]
    return F.detach(), [(ci - mi).detach() for ci, mi in zip(c, mixed)]


def implicit_step(op, state, solve, damping: float = 0.0):
    """The whole ``step`` of an implicit terminal operator (CG, NS, or a plugin's), API 2:
    evaluate at ``state.point`` (PTT) with respect to ``state.wrt`` (IAD) or ``ul_var``,
    differentiate the condition the dynamics declared (``state.optimality``; else the
    objective they descended, GDA's phi included), add DI's gradient when asked, and
    return the checked ``Result``.

    Parameters
    ----------
    op : HyperGradient
    state : ChainState
    solve : callable
        ``solve(matvec, b) -> x`` for ``A x = b``: ``b`` and ``x`` are lists of Vars
        shaped like the lower variables; ``matvec`` maps such a list to A times it
        (detached: one vector-Jacobian product per call). ``x`` need not be
        differentiable (it is detached before use). ``linear_solver(op, name, ...)``
        binds a registered solver by name.
    damping : float
        lambda >= 0: solve (A + lambda I) v = grad_y F.
    """
    from .autodiff import terminal_result

    y = state.ll_point()
    wrt = list(state.wrt) if state.wrt is not None else op.ul_var
    F, g = implicit_hypergradient(op, state.ll_feed, state.ul_feed, state.fmodel, y, wrt,
                                  solve, state.ll_objective, damping,
                                  getattr(state, "optimality", None))
    return terminal_result(op, state, F, g, y, wrt)

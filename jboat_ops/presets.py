"""jboat's presets: the classical gradient-based bilevel algorithms as named solver configs,
registered through the same hook a third-party distribution uses."""

from __future__ import annotations

from jboat_core.contract import API_VERSION, Preset, hookimpl

JBOAT_API_VERSION = API_VERSION

PRESETS = (
    Preset("RHG", "Reverse hyper-gradient: unrolled NGD, reverse-mode through it",
           "Franceschi et al., Forward and reverse gradient-based hyperparameter optimization, "
           "ICML 2017", {"gm_op": ["NGD"], "na_op": ["RAD"]}),
    Preset("TRHG", "Truncated RHG: back-propagate through the last K - T steps",
           "Shaban et al., Truncated back-propagation for bilevel optimization, AISTATS 2019",
           {"gm_op": ["NGD"], "na_op": ["RGT", "RAD"], "RGT": {"truncate_iter": 1}}),
    Preset("BDA", "Bi-level descent aggregation: inner steps on alpha F + (1 - alpha) f, then RAD",
           "Liu et al., A generic first-order algorithmic framework for bi-level programming "
           "beyond lower-level singleton, ICML 2020",
           {"gm_op": ["GDA", "NGD"], "na_op": ["RAD"]},
           notes="needs gda_loss (the aggregated objective) from the task"),
    Preset("IAPTT-GM", "Initialisation auxiliary + pessimistic trajectory truncation",
           "Liu et al., Towards gradient-based bilevel optimization with non-convex followers "
           "and beyond, NeurIPS 2021", {"gm_op": ["DI", "NGD"], "na_op": ["PTT", "RAD"]}),
    Preset("DARTS", "DARTS' second-order approximation: one inner step, FD hyper-gradient",
           "Liu, Simonyan, Yang, DARTS: Differentiable architecture search, ICLR 2019",
           {"gm_op": ["NGD"], "na_op": ["FD"], "lower_iters": 1}),
    Preset("MAML", "Model-agnostic meta-learning: dF(y_K)/dy_0 through the inner steps",
           "Finn, Abbeel, Levine, Model-agnostic meta-learning for fast adaptation of deep "
           "networks, ICML 2017", {"gm_op": ["NGD"], "na_op": ["IAD"]},
           notes="the same variables at both levels (the meta-initialisation)"),
    Preset("FOMAML", "First-order MAML: stopped inner gradients, grad_y F(y_K)",
           "Nichol, Achiam, Schulman, On first-order meta-learning algorithms, arXiv 2018",
           {"gm_op": ["NGD"], "na_op": ["FOA", "IAD"]},
           notes="the same variables at both levels"),
    Preset("iMAML", "Implicit MAML: IFT with respect to the initialisation, CG solve",
           "Rajeswaran, Finn, Kakade, Levine, Meta-learning with implicit gradients, "
           "NeurIPS 2019", {"gm_op": ["NGD"], "na_op": ["IAD", "CG"],
                            "CG": {"k": 20, "tolerance": 0.0}},
           notes="the same variables at both levels, and a lower objective with the proximal "
                 "term lambda/2 |y - y_0|^2 (e.g. meta_sinusoid's `proximal`); without it the "
                 "implicit gradient with respect to y_0 is zero"),
    Preset("AID-CG", "Approximate implicit differentiation, conjugate-gradient solve",
           "Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016",
           {"gm_op": ["NGD"], "na_op": ["CG"]}),
    Preset("AID-NS", "Approximate implicit differentiation, truncated Neumann series",
           "Lorraine, Vicol, Duvenaud, Optimizing millions of hyperparameters by implicit "
           "differentiation, AISTATS 2020", {"gm_op": ["NGD"], "na_op": ["NS"]}),
    Preset("BVFIM", "Value-function interior-point method (first order, VSO)",
           "Liu et al., A value-function-based interior-point method for non-convex bi-level "
           "optimization, ICML 2021", {"fo_op": ["VSO"]}),
    Preset("BOME", "Bilevel optimization made easy (first order, VFO)",
           "Liu et al., BOME! Bilevel optimization made easy: a simple first-order approach, "
           "NeurIPS 2022", {"fo_op": ["VFO"]}),
    Preset("MEHA", "Moreau-envelope single-loop Hessian-free method (first order, MESO)",
           "Liu et al., Moreau envelope for nonconvex bi-level optimization: a single-loop and "
           "Hessian-free solution strategy, ICML 2024", {"fo_op": ["MESO"]}),
    Preset("PBGD", "Penalty-based bilevel gradient descent (first order, PGDO)",
           "Shen and Chen, On penalty-based bilevel gradient descent method, ICML 2023",
           {"fo_op": ["PGDO"]}),
    Preset("SOBA", "Stochastic bilevel algorithm: joint minibatch steps on y, v, x",
           "Dagreou et al., A framework for bilevel optimization that enables stochastic and "
           "global variance reduction algorithms, NeurIPS 2022", {"fo_op": ["SOBA"]},
           notes="feeds are finite sums (arrays with a leading dimension n) and the "
                 "objectives means over the examples; SGD optimizers give the paper's steps"),
    Preset("SABA", "SOBA with SAGA variance reduction over both levels (tables per block)",
           "Dagreou et al., A framework for bilevel optimization that enables stochastic and "
           "global variance reduction algorithms, NeurIPS 2022", {"fo_op": ["SABA"]},
           notes="keeps one row per block of batch_size examples per table (see SABA)"),
    Preset("MA-SOBA", "SOBA with a moving average of the upper direction",
           "Chen, Xu, Zhang, Optimal algorithms for stochastic bilevel optimization under "
           "relaxed smoothness conditions, ICML 2023", {"fo_op": ["MASOBA"]}),
    Preset("StocBiO", "Stochastic bilevel optimizer: inner SGD, Neumann-series hyper-gradient",
           "Ji, Yang, Liang, Bilevel optimization: convergence analysis and enhanced design, "
           "ICML 2021", {"fo_op": ["StocBiO"]}),
    Preset("AmIGO", "Amortized implicit gradient: warm-started stochastic solves for y and v",
           "Arbel, Mairal, Amortized implicit differentiation for stochastic bilevel "
           "optimization, ICLR 2022", {"fo_op": ["AmIGO"]}),
    Preset("TTSA", "Two-timescale stochastic approximation (fast y, slow x)",
           "Hong, Wai, Wang, Yang, A two-timescale stochastic algorithm framework for bilevel "
           "optimization, SIAM J. Optim. 2023", {"fo_op": ["TTSA"], "lower_iters": 1}),
)


@hookimpl
def jboat_register_presets(register):
    for preset in PRESETS:
        register(preset)

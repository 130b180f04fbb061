"""One adapter per framework: build the problem's models and objectives there and return
callables for one hyper-iteration and for the gradient / HVP units.

Each adapter module exposes ``setup(prob, method, y0, lr, op_config) -> Bench``.
Frameworks are imported only inside these modules (each runs in its own venv).
"""

ADAPTERS = {"jboat": "benchmarks.adapters.jboat_jt",
            "boatjit": "benchmarks.adapters.boatjit",
            "boattorch": "benchmarks.adapters.boattorch",
            "bare": "benchmarks.adapters.bare_jt"}

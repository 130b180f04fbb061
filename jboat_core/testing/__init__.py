"""Testing kit for jboat operators: reference bilevel problems with exact float64
hyper-gradients (``problems``) and the conformance suite every operator passes
(``conformance``). Plugin authors import it from their own pytest files."""

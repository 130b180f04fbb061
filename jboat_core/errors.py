"""Exceptions raised by jboat. Each message names the operator, the plugin distribution
that supplied it, the rule that was broken and what to do about it."""

from __future__ import annotations


class JboatError(Exception):
    """Base class of every jboat error."""


class PluginError(JboatError):
    """A plugin failed to load, declared bad metadata or conflicts with another plugin."""


class MetadataError(PluginError):
    """An operator class declares invalid metadata."""


class UnknownOperatorError(JboatError, KeyError):
    """An operator name that no loaded plugin registers."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class ChainError(JboatError, ValueError):
    """An invalid composition of operators.

    Attributes
    ----------
    operator : str or None
        The operator at fault.
    rule : str
        The identifier of the broken rule (e.g. ``"modifier-last"``).
    choices : tuple of str
        Valid alternatives, when there are any.
    kind : str or None
        The operator kind whose list is at fault (``"first_order"``...), when known.
    """

    def __init__(self, message: str, *, operator: str | None = None, rule: str = "",
                 choices: tuple[str, ...] = (), kind: str | None = None):
        super().__init__(message)
        self.operator = operator
        self.rule = rule
        self.choices = tuple(choices)
        self.kind = kind


class ConfigError(JboatError, ValueError):
    """A solver configuration that does not validate. ``str(err)`` is one ``loc: message``
    line per problem."""

    def __init__(self, lines: list[str], source: str | None = None):
        self.lines = list(lines)
        self.source = source
        if len(self.lines) == 1:  # one problem, one line
            super().__init__(f"{source}: {self.lines[0]}" if source else self.lines[0])
            return
        head = f"invalid jboat configuration{f' in {source}' if source else ''}:"
        super().__init__("\n".join([head, *("  " + ln for ln in self.lines)]))


class OperatorRuntimeError(JboatError, RuntimeError):
    """A failure while an operator computes (non-scalar objective, NaN in the lower loop,
    mismatched parameter lists...). The message names the operator and the step."""

    def __init__(self, operator: str, step: str, message: str):
        self.operator = operator
        self.step = step
        self.message = message
        super().__init__(f"{operator}: {step}: {message}")

    def at(self, current_iter: int | None) -> "OperatorRuntimeError":
        """The same error with the outer iteration in its step (if not there yet)."""
        if current_iter is None or "outer iteration" in self.step:
            return self
        return type(self)(self.operator, f"outer iteration {current_iter}, {self.step}",
                          self.message)


class DivergedError(OperatorRuntimeError):
    """An iteration's results, losses or operator states are NaN/Inf (the run diverged);
    raised before anything is updated."""


class JittorSetupError(JboatError):
    """Jittor cannot be imported as this process needs it: CUDA asked for where it cannot
    work, no MPI under mpirun, or Jittor's own import failed."""


class PrecisionWarning(UserWarning):
    """An objective returns a lower precision than the variables it is given (float32 for
    float64 variables): part of it computes in float32, so the hyper-gradient is
    float32-accurate there."""

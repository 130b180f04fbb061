"""JBOAT's ``jboat.operation_registry``, answered by jboat's plugin registry.

``get_registered_operation(name)`` returns the operator class registered under ``name``
(any kind, case-insensitive), in its seed form (JBOAT's constructor and keyword method,
``jboat_core.compat.seed.seed_class``); ``register_class`` is kept for scripts that decorate their
own classes, which are found by ``get_registered_operation`` too. To make an operator
usable by name in configs, ship it as a plugin (see docs/plugins.md).
"""

from __future__ import annotations

Operation_REGISTRY: dict[str, type] = {}


def register_class(cls):
    """Remember ``cls`` under its class name (upstream's decorator)."""
    Operation_REGISTRY[cls.__name__] = cls
    return cls


def get_registered_operation(name: str):
    """The class registered under ``name``; ``ValueError`` as upstream when unknown."""
    from jboat_core.compat.seed import seed_operator
    from jboat_core.errors import UnknownOperatorError

    if name in Operation_REGISTRY:
        return Operation_REGISTRY[name]
    try:
        return seed_operator(name)
    except UnknownOperatorError as exc:
        raise ValueError(f"Class '{name}' is not registered. {exc}") from None

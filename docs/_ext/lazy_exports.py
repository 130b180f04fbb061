"""A griffe extension: the names a package loads lazily, read statically.

``jboat_core.numerics`` exports its names through a module ``__getattr__`` (reading one
imports Jittor) and declares them as ``__all__ = sorted(_WHERE)``, ``_WHERE`` a dict
literal ``{public name: submodule}``. griffe cannot evaluate that ``__all__`` and sees no
member, so the API page would be empty. This extension reads the dict from the source
(nothing is imported), adds one alias per name to ``submodule.name`` and sets the module's
exports to the dict's keys: ``::: jboat_core.numerics`` then renders what ``__all__`` says,
like any other surface. A module whose ``__all__`` griffe already reads is left alone.
"""

from __future__ import annotations

import ast

from griffe import Alias, Extension


def _lazy_map(tree: ast.Module) -> dict[str, str] | None:
    """``{name: submodule}`` when ``__all__`` is ``sorted(D)``/``list(D)``/``tuple(D)`` of a
    module-level dict literal ``D`` of strings to strings, else None."""
    dicts, source = {}, None
    for node in tree.body:
        if not (isinstance(node, (ast.Assign, ast.AnnAssign))):
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if isinstance(node.value, ast.Dict):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                dicts.update({n: value for n in names})
        elif "__all__" in names and isinstance(node.value, ast.Call):
            call = node.value
            if (isinstance(call.func, ast.Name) and call.func.id in {"sorted", "list", "tuple"}
                    and len(call.args) == 1 and isinstance(call.args[0], ast.Name)):
                source = call.args[0].id
    return dicts.get(source) if source else None


class LazyExports(Extension):
    """Aliases for the names of a ``__all__ = sorted({name: submodule})`` package."""

    def on_module_members(self, *, node, mod, agent, **kwargs) -> None:
        if not isinstance(node, ast.Module) or mod.exports:
            return
        where = _lazy_map(node)
        if not where:
            return
        for name, submodule in sorted(where.items()):
            if name not in mod.members:
                mod.set_member(name, Alias(name, f"{mod.path}.{submodule}.{name}", parent=mod))
        mod.exports = sorted(where)

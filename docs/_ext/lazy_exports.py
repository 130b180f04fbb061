"""A griffe extension: the names a package loads lazily, read statically.

``jboat_core.numerics`` exports its names through a module ``__getattr__`` (reading one
imports Jittor) and declares them as ``__all__ = sorted(_WHERE)``, ``_WHERE`` a dict
literal ``{public name: submodule}``. griffe cannot evaluate that ``__all__`` and sees no
member, so the API page would be empty. This extension reads the dict from the source
(nothing is imported), adds one alias per exported name that is not a member to
``submodule.name``, and sets the module's exports to the dict's keys when griffe found
none: ``::: jboat_core.numerics`` then renders what ``__all__`` says, like any other
surface. A module whose exported names are all members is left alone.
"""

from __future__ import annotations

import ast

from griffe import Alias, Extension


def _lazy_map(tree: ast.Module) -> tuple[dict[str, str], list[str] | None]:
    """The module-level dict literals of strings to strings, merged (``{name: submodule}``),
    and the names ``__all__`` gives when it is ``sorted(D)``/``list(D)``/``tuple(D)`` of one
    of them (None otherwise)."""
    dicts: dict[str, dict[str, str]] = {}
    source = None
    for node in tree.body:
        if not isinstance(node, (ast.Assign, ast.AnnAssign)) or node.value is None:
            continue
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if isinstance(node.value, ast.Dict):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            if value and all(isinstance(k, str) and isinstance(v, str)
                             for k, v in value.items()):
                dicts.update({n: value for n in names})
        elif "__all__" in names and isinstance(node.value, ast.Call):
            call = node.value
            if (isinstance(call.func, ast.Name) and call.func.id in {"sorted", "list", "tuple"}
                    and len(call.args) == 1 and isinstance(call.args[0], ast.Name)):
                source = call.args[0].id
    where = {k: v for d in dicts.values() for k, v in d.items()}
    return where, sorted(dicts[source]) if source in dicts else None


class LazyExports(Extension):
    """Aliases for the lazily loaded names of a package's ``__all__``."""

    def on_module_members(self, *, node, mod, agent, **kwargs) -> None:
        if not isinstance(node, ast.Module):
            return
        where, declared = _lazy_map(node)
        if not where:
            return
        exported = [str(e) for e in mod.exports] if mod.exports else declared
        if not exported:
            return
        for name in exported:
            if name not in mod.members and name in where:
                target = f"{mod.path}.{where[name]}.{name}"
                mod.set_member(name, Alias(name, target, parent=mod))
        if not mod.exports:
            mod.exports = list(exported)

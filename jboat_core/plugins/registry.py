"""Discovery of operators through the ``jboat`` entry-point group.

One try/except per entry point: a plugin that fails to import (any exception, even
``SystemExit``; only ``KeyboardInterrupt`` goes through), declares an incompatible API
version or bad metadata becomes a reported ``PluginFailure`` (shown by ``jboat
list-ops``), never a crash, unless ``JBOAT_STRICT_PLUGINS=1``. Built-in operators come
through the same group (the ``jboat`` distribution); a third-party operator that reuses
a built-in's name is refused and reported against its own distribution, the built-in
stays. Every kind of ``jboat_core.contract.kinds.KINDS`` is registered through its own hook.
Never imports Jittor.

Environment
-----------
JBOAT_STRICT_PLUGINS=1
    Re-raise the first plugin failure instead of reporting it.
JBOAT_LOAD_PLUGINS=dist1,dist2
    Load only entry points of these distributions (``jboat`` is the built-ins).
JBOAT_DISABLE_PLUGINS=dist1,dist2
    Skip entry points of these distributions.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import traceback
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata

import pluggy

from ..errors import MetadataError, PluginError, UnknownOperatorError
from ..contract.kinds import KINDS, STAGES
from ..contract.metadata import validate_metadata
from .presets import validate_preset
from ..contract import components as _components
from ..contract.components import COMPONENTS, validate_component
from ..contract.spec import API_VERSION, PROJECT_NAME, SUPPORTED_API_VERSIONS, JboatHookSpec

_KIND_RANK = {name: i for i, name in enumerate(KINDS)}

#: Distribution of the built-in operators.
BUILTIN_DISTRIBUTION = "jboat"


@dataclass(frozen=True)
class Origin:
    """Where an operator came from: entry point and distribution."""

    entry_point: str
    value: str
    distribution: str
    version: str

    def __str__(self) -> str:
        return f"plugin {self.entry_point!r} ({self.distribution} {self.version})"

    @property
    def builtin(self) -> bool:
        """True for jboat's own operators."""
        return _norm_dist(self.distribution) == BUILTIN_DISTRIBUTION


@dataclass(frozen=True)
class OperatorRecord:
    """A registered operator class and where it came from."""

    cls: type
    origin: Origin
    api_version: int = API_VERSION
    """The contract version the class implements (``check_api``): 1 runs through the API-1
    adapter of the operator bases."""

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def note(self) -> str:
        """One line for ``list-ops --verbose`` ("" for a plugin on the current API)."""
        if self.api_version == API_VERSION:
            return ""
        return (f"written for API {self.api_version}: runs through the adapter; move it to "
                f"API {API_VERSION} (CONTRIBUTING.md)")

    @property
    def kind(self) -> str:
        return self.cls.kind

    def as_dict(self) -> dict:
        c = self.cls
        return {
            "name": c.name, "kind": c.kind, "stage": c.stage, "order": c.order,
            "role": c.role, "followed_by": list(c.followed_by),
            "needs_trajectory": c.needs_trajectory, "requires_any": list(c.requires_any),
            "conflicts": list(c.conflicts), "keeps_initialisation": c.keeps_initialisation,
            "requires_runtime": list(c.requires_runtime),
            "summary": c.summary, "reference": c.reference,
            "distribution": self.origin.distribution, "version": self.origin.version,
            "entry_point": self.origin.entry_point,
            "object": f"{c.__module__}:{c.__qualname__}",
            "api_version": self.api_version,
        }


@dataclass(frozen=True)
class PresetRecord:
    """A registered preset and where it came from."""

    preset: object
    origin: Origin

    @property
    def name(self) -> str:
        return self.preset.name

    def as_dict(self) -> dict:
        p = self.preset
        return {"name": p.name, "summary": p.summary, "reference": p.reference,
                "config": dict(p.config), "notes": p.notes,
                "distribution": self.origin.distribution, "version": self.origin.version}


@dataclass(frozen=True)
class ComponentRecord:
    """A registered component (linear solver, prox map) and where it came from."""

    component: object
    origin: Origin

    @property
    def name(self) -> str:
        return self.component.name

    @property
    def kind(self) -> str:
        return self.component.kind

    def as_dict(self) -> dict:
        return {**self.component.as_dict(), "distribution": self.origin.distribution,
                "version": self.origin.version, "entry_point": self.origin.entry_point}


@dataclass(frozen=True)
class PluginFailure:
    """A plugin (or one of its operators) that could not be registered."""

    origin: Origin
    error: str
    detail: str = ""

    def as_dict(self) -> dict:
        return {"entry_point": self.origin.entry_point, "value": self.origin.value,
                "distribution": self.origin.distribution, "version": self.origin.version,
                "error": self.error, "detail": self.detail}


#: Set by ``jboat_core.compat`` (installed when ``jboat_core`` is imported): ``adapt(cls)``,
#: the API-2 class of a class written for API 1 (``compute_gradients`` / ``optimize``
#: instead of ``step``), or None for a class that is not one.
API1_ADAPTER = None


def check_api(cls: type, origin: str) -> tuple[int, type]:
    """``(version, class to register)``: ``(2, cls)`` when ``cls`` implements every
    abstract method of its base (``step``); ``(1, adapted)`` for a class written for API 1
    (its keyword method runs through the compatibility wing's adapter, whatever version
    its plugin declares); ``MetadataError`` naming the plugin, the class and the missing
    methods otherwise."""
    missing = sorted(getattr(cls, "__abstractmethods__", ()) or ())
    if not missing:
        return cls.api_version(), cls
    adapted = API1_ADAPTER(cls) if API1_ADAPTER is not None and missing == ["step"] else None
    if adapted is not None:
        return 1, adapted
    where = f"{cls.__module__}.{cls.__qualname__}"
    base = next((c.__name__ for c in cls.__mro__
                 if c.__module__ == "jboat_core.contract.operators"), "Operator")
    raise MetadataError(f"{origin}: operator {cls.name!r} ({where}) does not implement "
                        f"{', '.join(m + '(state)' for m in missing)}, abstract in "
                        f"jboat_core.contract.{base}; implement it (CONTRIBUTING.md, "
                        "'The step protocol')")


def _csv_env(name: str) -> set[str] | None:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    return {_norm_dist(part) for part in raw.split(",") if part.strip()}


def _norm_dist(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _origin_of(ep) -> Origin:
    dist = getattr(ep, "dist", None)
    dname = getattr(dist, "name", None) or getattr(dist, "metadata", {}).get("Name", None)
    return Origin(ep.name, getattr(ep, "value", "?"), dname or "unknown",
                  getattr(dist, "version", None) or "?")


@dataclass
class Registry:
    """Operators found through entry points, by kind and name.

    Use ``Registry.load()`` (real entry points, honouring the environment switches) or
    ``Registry.from_entry_points(eps)`` (explicit entry points, e.g. fakes in tests).
    """

    operators: dict[str, OperatorRecord] = field(default_factory=dict)
    failures: list[PluginFailure] = field(default_factory=list)
    conflicts: dict[str, list[OperatorRecord]] = field(default_factory=dict)
    strict: bool = False
    presets: dict[str, PresetRecord] = field(default_factory=dict)
    components: dict[str, dict[str, ComponentRecord]] = field(
        default_factory=lambda: {k: {} for k in COMPONENTS})

    # -- loading -----------------------------------------------------------------
    @classmethod
    def load(cls, group: str = PROJECT_NAME, strict: bool | None = None) -> "Registry":
        eps = importlib_metadata.entry_points(group=group)
        only, disabled = _csv_env("JBOAT_LOAD_PLUGINS"), _csv_env("JBOAT_DISABLE_PLUGINS")
        chosen = []
        for ep in eps:
            dist = _norm_dist(_origin_of(ep).distribution)
            if (only is not None and dist not in only) or (disabled and dist in disabled):
                continue
            chosen.append(ep)
        return cls.from_entry_points(chosen, strict=strict)

    @classmethod
    def from_entry_points(cls, entry_points: Iterable, strict: bool | None = None) -> "Registry":
        if strict is None:
            strict = os.environ.get("JBOAT_STRICT_PLUGINS", "") not in ("", "0")
        reg = cls(strict=strict)
        with contextlib.redirect_stdout(sys.stderr):  # a plugin printing at import must not
            for ep in sorted(entry_points,           # break `jboat list-ops --json`
                             key=lambda e: (_origin_of(e).distribution, e.name)):
                reg._load_one(ep)
        reg._check_references()
        return reg

    def with_classes(self, classes: Iterable[type], distribution: str = "local") -> "Registry":
        """A copy of this registry with ``classes`` registered too, as a plugin of
        ``distribution`` would register them (validated the same way): what the
        conformance kit runs an operator that is not installed with."""
        import copy

        from ..contract.kinds import KINDS as _KINDS

        reg = Registry(dict(self.operators), list(self.failures),
                       copy.deepcopy(self.conflicts), self.strict, dict(self.presets),
                       {k: dict(v) for k, v in self.components.items()})
        for cls in classes:
            origin = Origin(f"{cls.__module__}:{cls.__qualname__}", cls.__module__,
                            distribution, "local")
            reg._register(_KINDS[cls.kind], origin, cls)
        reg._check_references()
        return reg

    def _check_references(self) -> None:
        """``requires_any`` must name registered operators: checked once every plugin is
        loaded (plugins load in any order); an operator whose requirement can never be
        met is refused, reported against its plugin (repeated: refusals can cascade)."""
        changed = True
        while changed:
            changed = False
            for key, rec in list(self.operators.items()):
                unknown = [n for n in rec.cls.requires_any if n.upper() not in self.operators]
                if unknown:
                    del self.operators[key]
                    changed = True
                    self._fail(rec.origin, f"{rec.kind} operator {rec.name} declares invalid "
                               f"metadata: requires_any names {', '.join(map(repr, unknown))}, "
                               "which no loaded plugin registers; fix the name, or install "
                               "the distribution that provides it")

    def _fail(self, origin: Origin, error: str, exc: BaseException | None = None) -> None:
        if self.strict:
            if exc is not None:
                raise PluginError(f"{origin}: {error}") from exc
            raise PluginError(f"{origin}: {error}")
        detail = "".join(traceback.format_exception(exc)) if exc is not None else ""
        self.failures.append(PluginFailure(origin, error, detail))

    def _load_one(self, ep) -> None:
        origin = _origin_of(ep)
        try:
            module = ep.load()
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # noqa: BLE001 - even sys.exit at import is reported
            self._fail(origin, f"import failed: {type(exc).__name__}: {exc}", exc)
            return
        declared = getattr(module, "JBOAT_API_VERSION", None)
        if declared not in SUPPORTED_API_VERSIONS:
            self._fail(origin, f"declares JBOAT_API_VERSION={declared!r} but this jboat "
                               f"implements API {API_VERSION} (and runs API 1 plugins "
                               f"through an adapter); install a plugin release built for "
                               f"API {API_VERSION} (or set JBOAT_API_VERSION = {API_VERSION} "
                               "if you wrote it)")
            return
        pm = pluggy.PluginManager(PROJECT_NAME)
        pm.add_hookspecs(JboatHookSpec)
        try:
            pm.register(module, name=ep.name)
            pm.check_pending()
        except Exception as exc:  # noqa: BLE001 - pluggy's validation message is kept
            self._fail(origin, f"invalid hook implementation: {exc}", exc)
            return
        hooks = [(kind.hook, functools.partial(self._register, kind, origin))
                 for kind in KINDS.values()]
        hooks.append(("jboat_register_presets", functools.partial(self._register_preset, origin)))
        hooks += [(ck.hook, functools.partial(self._register_component, ck, origin))
                  for ck in COMPONENTS.values()]
        for hook, register in hooks:
            for impl in getattr(pm.hook, hook).get_hookimpls():
                try:
                    impl.function(register=register)
                except MetadataError as exc:
                    self._fail(origin, str(exc), exc)
                except KeyboardInterrupt:
                    raise
                except BaseException as exc:  # noqa: BLE001
                    self._fail(origin, f"{hook} raised {type(exc).__name__}: {exc}", exc)

    def _register_component(self, kind, origin: Origin, obj) -> None:
        validate_component(obj, kind, str(origin))
        table = self.components[kind.name]
        held = table.get(obj.name)
        if held is None:
            table[obj.name] = ComponentRecord(obj, origin)
            return
        winner, loser = held.origin, origin
        if origin.builtin and not held.origin.builtin:  # the built-in stays
            table[obj.name] = ComponentRecord(obj, origin)
            winner, loser = origin, held.origin
        self._fail(loser, f"{kind.label} {obj.name!r} is already registered by {winner}; "
                          "it was not registered and that one stays. Rename it")

    def with_components(self, components, distribution: str = "local") -> "Registry":
        """A copy of this registry with ``components`` (``LinearSolver`` / ``ProxMap``
        declarations) registered too, validated as a plugin's would be."""
        reg = self.with_classes([], distribution)
        for obj in components:
            origin = Origin(obj.name, str(obj.function), distribution, "local")
            reg._register_component(COMPONENTS[obj.kind], origin, obj)
        return reg

    def component(self, kind: str, name: str):
        """The declaration of component ``name`` (case-insensitive) of ``kind``."""
        rec = self.components[kind].get(str(name).lower())
        if rec is None:
            valid = ", ".join(sorted(self.components[kind])) or "(none loaded)"
            raise UnknownOperatorError(
                f"unknown {COMPONENTS[kind].label} {name!r}; valid choices: {valid}. Run "
                "`jboat list-ops` to see what is installed")
        return rec.component

    def component_records(self, kind: str | None = None) -> list[ComponentRecord]:
        """Component records sorted by (kind, name)."""
        return [self.components[k][n] for k in COMPONENTS if kind in (None, k)
                for n in sorted(self.components[k])]

    def _register_preset(self, origin: Origin, preset) -> None:
        validate_preset(preset, str(origin))
        key = preset.name.upper()
        held = self.presets.get(key)
        if held is None:
            self.presets[key] = PresetRecord(preset, origin)
            return
        if held.origin.builtin and not origin.builtin:
            self._fail(origin, f"preset {preset.name!r} reuses the name of jboat's built-in "
                               "preset; it was not registered and the built-in stays. Rename it")
            return
        if origin.builtin and not held.origin.builtin:
            self.presets[key] = PresetRecord(preset, origin)
            self._fail(held.origin, f"preset {preset.name!r} reuses the name of jboat's "
                                    "built-in preset; it was not registered and the built-in "
                                    "stays. Rename it")
            return
        self._fail(origin, f"preset name {preset.name!r} is registered twice: by {held.origin} "
                           f"and by {origin}; the first stays. Rename one")

    def _register(self, kind, origin: Origin, cls: type) -> None:
        validate_metadata(cls, kind, str(origin))
        version, cls = check_api(cls, str(origin))
        record = OperatorRecord(cls, origin, version)
        key = cls.name.upper()
        held = self.operators.get(key)
        if held is not None and held.origin.builtin != origin.builtin:
            builtin, other = (held, record) if held.origin.builtin else (record, held)
            self.operators[key] = builtin
            self._fail(other.origin, f"{other.kind} operator {other.cls.__module__}."
                       f"{other.cls.__qualname__} reuses the name {cls.name!r} of jboat's "
                       f"built-in {builtin.cls.__module__}.{builtin.cls.__qualname__}; it "
                       "was not registered and the built-in stays. Rename the plugin's "
                       f"operator (e.g. {other.origin.distribution.upper().replace('-', '_')}"
                       f"_{cls.name})")
            return
        if key in self.conflicts:
            self.conflicts[key].append(record)
        elif held is not None:
            self.conflicts[key] = [self.operators.pop(key), record]
        else:
            self.operators[key] = record
            return
        names = " and ".join(f"{r.cls.__module__}.{r.cls.__qualname__} from {r.origin}"
                             for r in self.conflicts[key])
        self._fail(origin, f"operator name {cls.name!r} is registered twice: {names}. "
                           "Uninstall one of the distributions, or disable one with "
                           "JBOAT_DISABLE_PLUGINS=<distribution>")

    # -- queries -----------------------------------------------------------------
    def get(self, name: str, kind: str | None = None) -> OperatorRecord:
        """The record of operator ``name`` (case-insensitive)."""
        key = str(name).upper()
        if key in self.conflicts:
            names = ", ".join(str(r.origin) for r in self.conflicts[key])
            raise UnknownOperatorError(
                f"operator {name!r} is ambiguous: registered by {names}. Disable one with "
                "JBOAT_DISABLE_PLUGINS=<distribution>")
        rec = self.operators.get(key)
        if rec is None or (kind is not None and rec.kind != kind):
            valid = ", ".join(self.names(kind)) or "(none loaded)"
            what = KINDS[kind].label if kind else "operator"
            raise UnknownOperatorError(
                f"unknown {what} {name!r}; valid choices: {valid}. Run `jboat list-ops` to "
                "see what is installed and which plugins failed to load")
        return rec

    def get_preset(self, name: str) -> PresetRecord | None:
        """The preset ``name`` (case-insensitive), or None."""
        return self.presets.get(str(name).upper())

    def preset_names(self) -> list[str]:
        return sorted(r.name for r in self.presets.values())

    def preset_records(self) -> list[PresetRecord]:
        return [self.presets[n.upper()] for n in self.preset_names()]

    def names(self, kind: str | None = None) -> list[str]:
        return [r.name for r in self.records(kind)]

    def records(self, kind: str | None = None) -> list[OperatorRecord]:
        """Records sorted by (kind, stage rank, order, name)."""
        recs = [r for r in self.operators.values() if kind is None or r.kind == kind]
        return sorted(recs, key=lambda r: (_KIND_RANK[r.kind], STAGES[r.kind].index(r.cls.stage),
                                           r.cls.order, r.name))


_DEFAULT: Registry | None = None


def get_registry() -> Registry:
    """The process-wide registry, loaded from entry points on first use."""
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = Registry.load()
    return _DEFAULT


_components.DEFAULT_REGISTRY = get_registry


def set_registry(registry: Registry | None) -> Registry | None:
    """Replace the process-wide registry (``None``: reload on next use); returns the old one."""
    global _DEFAULT
    old, _DEFAULT = _DEFAULT, registry
    return old

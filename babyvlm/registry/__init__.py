"""The only name -> component table in babyvlm.

pluggy discovers plugins (entry-point group ``babyvlm``, loaded once); each ``register_<kind>s``
hook fills one mmengine ``Registry`` per kind, from which configs build components. Bundled plugins
arrive through the same entry points as third-party ones. Names are matched exactly.

``register(name, component, **info)``: the keyword info is kept and returned by ``info(kind, name)``
without importing the component (the CLI reads a command's ``short_help`` from it for ``--help``).

A component may be registered as an import string ``"package.module:Name"``: it is imported on
first use, so listing plugins or running one command never imports every plugin's heavy
dependencies (torch, transformers).

Every built component is checked against its kind's contract (``babyvlm.core.contracts``): one that
lacks a required method or attribute is refused with a ``ComponentError`` naming the plugin and what is
missing. A plugin whose hook implementation matches no hook (a typo such as ``register_conectors``) is
marked broken with a did-you-mean.

Environment: ``BABYVLM_LOAD_PLUGINS=a,b`` loads only those external (non-bundled) plugins;
an empty value loads none. Naming a plugin that is not installed warns, listing the installed ones.
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import os
import re
import threading
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy
from mmengine.registry import Registry

from babyvlm.core import hookspecs
from babyvlm.core.contracts import missing_members
from babyvlm.core.errors import (
    BrokenPluginError,
    ComponentError,
    ConfigError,
    DuplicateComponentError,
    UnknownComponentError,
)
from babyvlm.core.kinds import KINDS
from babyvlm.core.specs import parse_spec

ENTRY_POINT_GROUP = "babyvlm"
BUNDLED_PACKAGE = "babyvlm"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
IMPORT_STRING = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
ALLOWLIST_VARIABLE = "BABYVLM_LOAD_PLUGINS"


@dataclass
class PluginInfo:
    name: str
    package: str
    version: str
    bundled: bool
    status: str = "ok"  # ok | broken
    error: str | None = None
    components: dict[str, list[str]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "package": self.package,
            "version": self.version,
            "bundled": self.bundled,
            "status": self.status,
            "error": self.error,
            "components": {kind: sorted(names) for kind, names in sorted(self.components.items())},
        }


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _check_options(kind: str, name: str, component: Any, options: dict[str, Any]) -> None:
    """Refuse options the component does not accept, naming them and the accepted ones (a typo in a
    config must not surface as a TypeError from deep inside mmengine or the component)."""
    try:
        signature = inspect.signature(component)
    except (TypeError, ValueError):  # builtins without a signature: let the call decide
        return
    try:
        signature.bind(**options)
    except TypeError as exc:
        accepted = [p.name for p in signature.parameters.values()
                    if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
        unknown = sorted(set(options) - set(accepted))
        detail = f"unknown option(s) {', '.join(map(repr, unknown))}" if unknown else str(exc)
        raise ConfigError(f"{kind} {name!r}: {detail}. Accepted options: {', '.join(accepted) or '(none)'}") from exc


class ComponentRegistry:
    """Loads plugins once and answers name -> component lookups for every kind."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._loaded = False
        self._reset_tables()

    def _reset_tables(self) -> None:
        self.plugins: dict[str, PluginInfo] = {}
        self._tables = {kind: Registry(kind) for kind in KINDS}
        self._owners: dict[tuple[str, str], str] = {}
        self._conflicts: dict[tuple[str, str], list[str]] = {}
        self._lazy: dict[tuple[str, str], str] = {}
        self._info: dict[tuple[str, str], dict[str, Any]] = {}
        self._pm = pluggy.PluginManager("babyvlm")
        self._pm.add_hookspecs(hookspecs)

    # ---- loading -------------------------------------------------------------------------
    def load(self) -> None:
        with self._lock:
            if self._loaded:
                return
            self._loaded = True
            for ep, info in self._discover():
                if info.status != "ok":
                    self.plugins[info.name] = info
                    continue
                try:
                    module = ep.load()
                except Exception as exc:  # a third-party import error must not take down the rest
                    info.status, info.error = "broken", _describe(exc)
                    self.plugins[info.name] = info
                    continue
                self._add(module, info)

    def _discover(self):
        allow = allowlist()
        seen: dict[str, str] = {}
        found = [(ep, ep.dist.metadata["Name"] if ep.dist is not None else "unknown")
                 for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)]
        if allow:
            _warn_unknown_allowed(allow, {ep.name for ep, package in found if package.lower() != BUNDLED_PACKAGE})
        # on an entry-point name clash the bundled plugin wins, then the first package by name
        found.sort(key=lambda item: (item[0].name, item[1].lower() != BUNDLED_PACKAGE, item[1].lower()))
        for ep, package in found:
            dist = ep.dist
            bundled = package.lower() == BUNDLED_PACKAGE
            if not bundled and allow is not None and ep.name not in allow:
                continue
            version = dist.version if dist is not None else "unknown"
            if ep.name in seen:
                if seen[ep.name] == package:
                    continue  # the same distribution visible twice on sys.path
                clash = PluginInfo(f"{ep.name} ({package})", package, version, bundled, status="broken",
                                   error=f"entry point name {ep.name!r} is also used by package {seen[ep.name]!r}")
                yield ep, clash
                continue
            seen[ep.name] = package
            yield ep, PluginInfo(ep.name, package, version, bundled)

    def register_plugin(self, plugin: ModuleType | object, name: str, *, package: str = "", version: str = "") -> PluginInfo:
        """Add an in-process plugin (a module or object with hookimpls), e.g. from a notebook."""
        with self._lock:
            self.load()
            if name in self.plugins:
                raise ComponentError(f"a plugin named {name!r} is already loaded")
            return self._add(plugin, PluginInfo(name, package or name, version or "0", bundled=False))

    def _add(self, plugin: object, info: PluginInfo) -> PluginInfo:
        self.plugins[info.name] = info
        try:
            self._pm.register(plugin, name=info.name)
        except Exception as exc:
            info.status, info.error = "broken", _describe(exc)
            return info
        unknown = _unknown_hooks(self._pm, info.name)
        if unknown:
            info.status, info.error = "broken", unknown
        for kind, hook_name in KINDS.items():
            for impl in getattr(self._pm.hook, hook_name).get_hookimpls():
                if impl.plugin_name != info.name:
                    continue
                try:
                    impl.function(register=self._registrar(kind, info))
                except Exception as exc:
                    info.status, info.error = "broken", f"in {hook_name}: {_describe(exc)}"
        return info

    def _registrar(self, kind: str, info: PluginInfo):
        def register(name: str, component: Any, **info_: Any) -> None:
            if not isinstance(name, str) or not NAME_PATTERN.match(name):
                raise ComponentError(f"plugin {info.name!r}: invalid {kind} name {name!r} (letters, digits, '_' and '-')")
            key = (kind, name)
            info.components.setdefault(kind, []).append(name)
            owner = self._owners.get(key)
            if owner is not None:
                self._conflicts.setdefault(key, [owner]).append(info.name)
                return
            if isinstance(component, str):
                if not IMPORT_STRING.match(component):
                    raise ComponentError(f"plugin {info.name!r}: {kind} {name!r} import string must look like "
                                         f"'package.module:Name', got {component!r}")
                self._lazy[key] = component
            else:
                self._tables[kind].register_module(name=name, module=component)
            self._owners[key] = info.name
            self._info[key] = dict(info_)

        return register

    # ---- lookup --------------------------------------------------------------------------
    def _check_kind(self, kind: str) -> None:
        if kind not in KINDS:
            raise ComponentError(f"unknown component kind {kind!r}. Kinds: {', '.join(KINDS)}")

    def names(self, kind: str) -> list[str]:
        self.load()
        self._check_kind(kind)
        return sorted(name for (k, name) in self._owners if k == kind)

    def get(self, kind: str, name: str) -> Any:
        self.load()
        self._check_kind(kind)
        key = (kind, name)
        if key in self._conflicts:
            raise DuplicateComponentError(kind, name, self._conflicts[key])
        owner = self._owners.get(key)
        if owner is None:
            available = self.names(kind)
            close = difflib.get_close_matches(name, available, n=1, cutoff=0.6)
            broken = {p.name: p.error or "" for p in self.plugins.values() if p.status == "broken"}
            raise UnknownComponentError(kind, name, available, close, broken, allowlist())
        plugin = self.plugins[owner]
        if plugin.status == "broken":
            raise BrokenPluginError(owner, plugin.error or "", kind, name)
        if key in self._lazy:
            self._resolve(kind, name, owner)
        # module_dict, not Registry.get: get() sets up mmengine's logger, which imports torch
        return self._tables[kind].module_dict[name]

    def _resolve(self, kind: str, name: str, owner: str) -> None:
        """Import a component registered as ``"module:attr"`` and put it in its table."""
        with self._lock:
            target = self._lazy.get((kind, name))
            if target is None:
                return
            module_name, _, attr = target.partition(":")
            try:
                component = importlib.import_module(module_name)
                for part in attr.split("."):
                    component = getattr(component, part)
            except Exception as exc:
                raise BrokenPluginError(owner, f"cannot import {target}: {_describe(exc)}", kind, name) from exc
            self._tables[kind].register_module(name=name, module=component)
            del self._lazy[(kind, name)]

    def info(self, kind: str, name: str) -> dict[str, Any]:
        """What the plugin said about a component when registering it (e.g. ``short_help=`` for a
        command), without importing the component."""
        self.load()
        self._check_kind(kind)
        return dict(self._info.get((kind, name), {}))

    def owner(self, kind: str, name: str) -> str:
        self.get(kind, name)
        return self._owners[(kind, name)]

    def build(self, kind: str, spec: str | Mapping[str, Any], **options: Any) -> Any:
        """Build a component from a name or a ``dict(type=name, **options)`` config, checked against its
        kind's contract."""
        name, cfg = parse_spec(spec, f"a {kind} spec")
        cfg.update(options)
        component = self.get(kind, name)
        _check_options(kind, name, component, cfg)
        built = component(**cfg)
        self.check_contract(kind, name, built)
        return built

    def check_contract(self, kind: str, name: str, component: Any) -> None:
        """Refuse a component lacking what its kind's protocol requires, naming plugin and members."""
        missing = missing_members(kind, component)
        if missing:
            owner = self._owners.get((kind, name), "?")
            raise ComponentError(f"{kind} {name!r} from plugin {owner!r} does not implement the {kind} contract "
                                 f"(babyvlm.core.contracts): missing {', '.join(missing)}")

    def components(self, kind: str | None = None) -> dict[str, dict[str, str]]:
        """``{kind: {name: plugin}}`` for every registered component (or one kind)."""
        self.load()
        kinds = [kind] if kind else list(KINDS)
        for k in kinds:
            self._check_kind(k)
        table: dict[str, dict[str, str]] = {k: {} for k in kinds}
        for (k, name), owner in sorted(self._owners.items()):
            if k in table:
                table[k][name] = owner
        return table

    def reset(self) -> None:
        """Forget everything and rediscover on next use (tests, or after installing a plugin)."""
        with self._lock:
            self._loaded = False
            self._reset_tables()


def allowlist() -> set[str] | None:
    """The external plugins ``BABYVLM_LOAD_PLUGINS`` allows (None: the variable is unset, all load)."""
    allowed = os.environ.get(ALLOWLIST_VARIABLE)
    return None if allowed is None else {n.strip() for n in allowed.split(",") if n.strip()}


def _warn_unknown_allowed(allow: set[str], installed: set[str]) -> None:
    for name in sorted(allow - installed):
        close = difflib.get_close_matches(name, sorted(installed), n=1, cutoff=0.6)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        warnings.warn(f"{ALLOWLIST_VARIABLE} names plugin {name!r}, which is not installed. Installed external "
                      f"plugins: {', '.join(sorted(installed)) or '(none)'}.{hint}", UserWarning, stacklevel=4)


def _unknown_hooks(pm: pluggy.PluginManager, plugin_name: str) -> str | None:
    """A message for the plugin's hook implementations that match no hookspec (typos), else None."""
    plugin = pm.get_plugin(plugin_name)
    known = sorted(KINDS.values())
    problems = []
    for attribute in dir(plugin):
        if attribute.startswith("_"):
            continue
        function = getattr(plugin, attribute, None)
        if function is None or pm.parse_hookimpl_opts(plugin, attribute) is None or attribute in known:
            continue
        close = difflib.get_close_matches(attribute, known, n=1, cutoff=0.6)
        problems.append(f"{attribute!r} matches no hook" + (f" (did you mean {close[0]!r}?)" if close else ""))
    return "hook implementation " + "; ".join(problems) if problems else None


REGISTRY = ComponentRegistry()
get = REGISTRY.get
owner = REGISTRY.owner
info = REGISTRY.info
build = REGISTRY.build
names = REGISTRY.names
components = REGISTRY.components
register_plugin = REGISTRY.register_plugin
check_contract = REGISTRY.check_contract


def plugins() -> list[PluginInfo]:
    REGISTRY.load()
    return sorted(REGISTRY.plugins.values(), key=lambda p: (not p.bundled, p.name))


def reset() -> None:
    REGISTRY.reset()


__all__ = [
    "ENTRY_POINT_GROUP",
    "REGISTRY",
    "ComponentRegistry",
    "PluginInfo",
    "allowlist",
    "build",
    "check_contract",
    "components",
    "get",
    "info",
    "names",
    "owner",
    "plugins",
    "register_plugin",
    "reset",
]

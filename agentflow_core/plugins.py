"""Finding plugins, calling their hooks, and containing their failures.

Three kinds of plugin, loaded in this order: the core's own modules (:data:`BUILTIN_PLUGINS`);
the entry points of the agentflow distribution itself (the built-in tools and benchmarks live
outside the core, which never imports them); then third-party entry points, each loaded on its
own so that one broken plugin is a warning naming its distribution, never a dead CLI.

Hooks are called through pluggy (``pm.hook.register_tools(register=...)``), so ``tryfirst``,
``trylast`` and hook wrappers mean what they mean anywhere else. Each implementation runs
attributed to its plugin (``provenance.py``) and guarded: if it raises, what it registered in
that call is dropped, a warning names the plugin and the error, and the other plugins' hooks
still run. ``AGENTFLOW_STRICT_PLUGINS=1`` turns those warnings into errors, for plugin authors;
``AGENTFLOW_DISABLE_PLUGINS=a,b`` (or ``*``) skips third-party entry points by name or
distribution to bisect a bad install (the built-ins stay).
"""

from __future__ import annotations

import functools
import importlib
import os
import warnings
from collections.abc import Callable, Generator, Iterable, Mapping
from importlib import metadata
from types import ModuleType
from typing import Any

import pluggy

from agentflow_core import hookspecs, provenance
from agentflow_core.errors import PluginError, one_line
from agentflow_core.registrar import Registrar
from agentflow_core.registry import COLLECTING_HOOKS, Registry

ENTRY_POINT_GROUP = "agentflow"
#: The distribution whose own entry points are built-ins, not third-party plugins.
AGENTFLOW_DISTRIBUTION = "agentflow"
#: The core's own plugins, registered like any other.
BUILTIN_PLUGINS = (
    "agentflow_core.engines.plugin",
    "agentflow_core.modules.plugin",
    "agentflow_core.cli.plugin",
)


class PluginLoadWarning(UserWarning):
    """A plugin could not be loaded, or one of its hooks failed; the others were loaded."""


class AgentFlowPluginManager(pluggy.PluginManager):
    """A pluggy manager that knows where each plugin came from and guards every hook implementation."""

    def __init__(self, *, strict: bool = False) -> None:
        super().__init__("agentflow")
        self.strict = strict
        #: Plugin name -> where it came from: ``"af-good 1.2 (af_good)"``, ``"agentflow (built-in ...)"``.
        self.sources: dict[str, str] = {}

    def register(self, plugin: object, name: str | None = None, *, source: str | None = None) -> str | None:
        registered = super().register(plugin, name)
        if registered is None:
            return None
        self.sources[registered] = source or _code_source(plugin, registered)
        for caller in self.get_hookcallers(plugin) or ():
            for impl in caller.get_hookimpls():
                if impl.plugin is plugin:
                    # pluggy still orders and calls the implementation; only what runs inside changes.
                    # pluggy declares the attribute Final; replacing it is how the guard wraps the call.
                    impl.function = _guarded(  # type: ignore[misc]
                        impl, caller.name, self.sources[registered], self._hook_failed
                    )
        return registered

    def source_of(self, plugin: object) -> str:
        name = self.get_name(plugin)
        return self.sources.get(name or "", repr(plugin))

    def warn_or_raise(self, message: str, cause: BaseException | None = None) -> None:
        if self.strict:
            raise PluginError(message) from cause
        warnings.warn(message, PluginLoadWarning, stacklevel=3)

    def _hook_failed(self, hook: str, attribution: provenance.Attribution, exc: Exception) -> None:
        attribution.failed = True
        # A broken rule of the contract speaks for itself; a crash names its type.
        what = one_line(exc) if isinstance(exc, PluginError) else f"{type(exc).__name__}: {one_line(exc)}"
        self.warn_or_raise(f"plugin {attribution.source}: {hook} failed: {what}", exc)


HookFailed = Callable[[str, provenance.Attribution, Exception], None]


def _guarded(impl: pluggy.HookImpl, hook: str, source: str, failed: HookFailed) -> Callable[..., Any]:
    function = impl.function
    if impl.wrapper or impl.hookwrapper:
        return functools.wraps(function)(_guarded_wrapper(function, hook, source, failed))

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        with provenance.attributed(provenance.Attribution(source)) as attribution:
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                failed(hook, attribution, exc)
                return None

    return call


def _guarded_wrapper(function: Callable[..., Any], hook: str, source: str, failed: HookFailed) -> Callable[..., Any]:
    """A hook wrapper (a generator) run step by step, each step attributed and its own failures contained.

    A wrapper that fails stands aside: it passes the inner result (or exception) on untouched.
    """

    def call(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        attribution = provenance.Attribution(source)
        steps = function(*args, **kwargs)
        received: Any = None
        thrown: BaseException | None = None
        yielded = False
        while True:
            try:
                with provenance.attributed(attribution):
                    out = steps.throw(thrown) if thrown is not None else steps.send(received)
            except StopIteration as stop:
                return stop.value
            except Exception as exc:
                if exc is thrown:
                    raise
                failed(hook, attribution, exc)
                if thrown is not None:
                    raise thrown from None
                return received if yielded else (yield)
            yielded = True
            try:
                received, thrown = (yield out), None
            except Exception as exc:
                received, thrown = None, exc

    return call


def _code_source(plugin: object, name: str) -> str:
    """A plugin registered in code: its module, or its class when pluggy named it by id()."""
    if not isinstance(plugin, ModuleType):
        name = f"{type(plugin).__module__}.{type(plugin).__qualname__}"
    return f"agentflow (built-in {name})" if name in BUILTIN_PLUGINS else name


def make_plugin_manager(
    *,
    entry_points: bool = True,
    bundled: bool = True,
    extra: Iterable[Any] = (),
    env: Mapping[str, str] | None = None,
) -> AgentFlowPluginManager:
    """A fresh manager: the core's plugins, agentflow's own entry points (unless ``bundled=False``),
    third-party entry points (unless ``entry_points=False``), then ``extra`` plugin objects."""
    env = os.environ if env is None else env
    pm = AgentFlowPluginManager(strict=env.get("AGENTFLOW_STRICT_PLUGINS", "") not in ("", "0"))
    pm.add_hookspecs(hookspecs)
    for name in BUILTIN_PLUGINS:
        pm.register(importlib.import_module(name), name=name)
    found = _entry_points()
    if bundled:
        _load(pm, [ep for ep in found if _is_agentflow(ep)])
    if entry_points:
        disabled = {d.strip() for d in env.get("AGENTFLOW_DISABLE_PLUGINS", "").split(",") if d.strip()}
        if "*" not in disabled:
            third_party = [ep for ep in found if not _is_agentflow(ep)]
            _load(pm, [ep for ep in third_party if not {ep.name, _dist_name(ep)} & disabled])
    for plugin in extra:
        if not pm.is_registered(plugin):  # a built-in named again by a test, say
            pm.register(plugin)
    # Hooks that packages on the core declare, before the check that every implemented hook has a spec.
    pm.hook.register_hookspecs(register=pm.add_hookspecs)
    pm.check_pending()
    return pm


def _entry_points() -> list[metadata.EntryPoint]:
    return list(metadata.entry_points(group=ENTRY_POINT_GROUP))


def _dist_name(ep: metadata.EntryPoint) -> str:
    return ep.dist.name if ep.dist else "?"


def _is_agentflow(ep: metadata.EntryPoint) -> bool:
    return _dist_name(ep).lower().replace("_", "-") == AGENTFLOW_DISTRIBUTION


def _load(pm: AgentFlowPluginManager, eps: Iterable[metadata.EntryPoint]) -> None:
    for ep in eps:
        if pm.get_plugin(ep.name) is not None:  # the same distribution installed twice
            continue
        dist = _dist_name(ep)
        if _is_agentflow(ep):
            source = f"agentflow (built-in {ep.value})"
        else:
            source = f"{dist} {ep.dist.version if ep.dist else ''}".strip() + f" ({ep.name})"
        try:
            plugin = ep.load()
        except Exception as exc:
            pm.warn_or_raise(
                f'Error loading plugin "{ep.name}" from {dist}: {type(exc).__name__}: {one_line(exc)}', exc
            )
            continue
        pm.register(plugin, name=ep.name, source=source)


def plugin_source(pm: pluggy.PluginManager, plugin: object) -> str:
    """The distribution (or module) a plugin came from, for provenance and error messages."""
    if isinstance(pm, AgentFlowPluginManager):
        return pm.source_of(plugin)
    return pm.get_name(plugin) or repr(plugin)


def collect(pm: pluggy.PluginManager, hook: str, registrar: Registrar[Any]) -> dict[str, Any]:
    """Call one collecting hook through pluggy with ``registrar``, then apply the clash and override rules."""
    getattr(pm.hook, hook)(register=registrar)
    return registrar.resolve()


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Ask every plugin what it provides."""
    return Registry(**{field: collect(pm, hook, make()) for field, (hook, make) in COLLECTING_HOOKS.items()})


def load_registry(
    *, entry_points: bool = True, bundled: bool = True, extra: Iterable[ModuleType | object] = ()
) -> Registry:
    return build_registry(make_plugin_manager(entry_points=entry_points, bundled=bundled, extra=extra))

"""Errors babyvlm raises on purpose. Each message names the file, row, key or plugin at fault."""

from __future__ import annotations


class BabyVLMError(Exception):
    """Base class: an error meant for the user, printed by the CLI without a traceback."""


class ComponentError(BabyVLMError):
    """A component cannot be found, is ambiguous, or comes from a broken plugin."""


class UnknownComponentError(ComponentError, KeyError):
    def __init__(self, kind: str, name: str, available: list[str], close: list[str], broken: dict[str, str],
                 allowlist: set[str] | None = None):
        self.kind, self.name, self.available, self.close = kind, name, available, close
        listing = ", ".join(available) if available else "(none registered)"
        message = f"unknown {kind} {name!r}. Available {kind}s: {listing}."
        if close:
            message += f" Did you mean {close[0]!r}?"
        for plugin, error in sorted(broken.items()):
            message += f" Note: plugin {plugin!r} is broken ({error}) and may have provided it."
        if allowlist is not None:
            allowed = ", ".join(sorted(allowlist)) or "none"
            message += (f" Note: BABYVLM_LOAD_PLUGINS is set, so only these external plugins load: {allowed}; "
                        f"the plugin providing it may be excluded.")
        super().__init__(message)

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class DuplicateComponentError(ComponentError):
    def __init__(self, kind: str, name: str, plugins: list[str]):
        self.kind, self.name, self.plugins = kind, name, plugins
        owners = " and ".join(repr(p) for p in plugins)
        super().__init__(
            f"{kind} {name!r} is registered by more than one plugin: {owners}. "
            f"Uninstall one, or limit plugins with BABYVLM_LOAD_PLUGINS."
        )


class BrokenPluginError(ComponentError):
    def __init__(self, plugin: str, error: str, kind: str | None = None, name: str | None = None):
        self.plugin, self.error = plugin, error
        what = f"{kind} {name!r} comes from plugin {plugin!r}, which" if kind else f"plugin {plugin!r}"
        super().__init__(f"{what} is broken: {error}")


class ConfigError(BabyVLMError):
    """A config or option is invalid."""


class DataError(BabyVLMError):
    """Input data is malformed. The message names the file and row/key."""


class ModelInputError(BabyVLMError):
    """A batch does not match the model (e.g. <image> tokens vs images)."""

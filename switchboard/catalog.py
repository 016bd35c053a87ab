"""Every declared service, by name, and everything a process reads from its environment: the one
place that knows them all (the platform, switchboard/shared, knows none).

Settings classes are imported eagerly (they are small), services lazily (``service(name)`` imports
its app module and what it serves), so that ``switchboard health`` stays quick.
"""

from __future__ import annotations

import dataclasses
import importlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from switchboard.services.edge.settings import EdgeSettings
from switchboard.services.identity.settings import IdentitySettings
from switchboard.services.interactions.settings import InteractionsSettings
from switchboard.services.runs.settings import RunsSettings
from switchboard.services.secretproxy.settings import SecretProxySettings
from switchboard.shared.config import SERVICES, Settings
from switchboard.shared.settings import EnvSettings, load

if TYPE_CHECKING:
    from switchboard.shared.service import Service

OWN_SETTINGS: dict[str, type[EnvSettings]] = {
    "identity": IdentitySettings,
    "interactions": InteractionsSettings,
    "secretproxy": SecretProxySettings,
    "runs": RunsSettings,
    "edge": EdgeSettings,
}
"""Each part's own settings class (the edge's too, though it is not a gRPC service)."""


def service(name: str) -> Service[Any]:
    """The declared Service called ``name`` (one of shared.config.SERVICES)."""
    if name not in SERVICES:
        raise KeyError(f"no service called {name!r}")
    return importlib.import_module(f"switchboard.services.{name}.app").SERVICE


def services() -> list[Service[Any]]:
    """Every gRPC service, in start order."""
    return [service(name) for name in SERVICES]


@dataclass(frozen=True)
class Configuration:
    """A process's whole configuration: the platform's settings and each part's own."""

    platform: Settings
    own: Mapping[str, EnvSettings]

    def of(self, name: str) -> Any:
        """The own settings of ``name`` (a service or the edge)."""
        return self.own[name]

    def replace(self, **values: Any) -> Configuration:
        """A copy with ``values`` changed, each in the class that declares it (as in configure)."""
        platform, own = _route(values)
        return Configuration(
            dataclasses.replace(self.platform, **platform),
            {name: dataclasses.replace(settings, **own.get(name, {})) for name, settings in self.own.items()},
        )


def load_configuration(environ: Mapping[str, str] | None = None) -> Configuration:
    """Everything from ``environ`` (default ``os.environ``), every class read together: raises one
    ConfigError listing every malformed value and every unknown variable under a claimed prefix."""
    environ = os.environ if environ is None else environ
    loaded = load(environ, [Settings, *OWN_SETTINGS.values()])
    return Configuration(loaded[Settings], {name: loaded[cls] for name, cls in OWN_SETTINGS.items()})


def configure(**values: Any) -> Configuration:
    """A configuration built in code (tests, benchmarks): each keyword goes to the class that
    declares it; everything else keeps its default."""
    return Configuration(Settings(), {name: cls() for name, cls in OWN_SETTINGS.items()}).replace(**values)


def _route(values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    platform_fields = {f.name for f in dataclasses.fields(Settings)}
    platform: dict[str, Any] = {}
    own: dict[str, dict[str, Any]] = {}
    for key, value in values.items():
        if key in platform_fields:
            platform[key] = value
            continue
        owners = [name for name, cls in OWN_SETTINGS.items() if key in {f.name for f in dataclasses.fields(cls)}]  # type: ignore[arg-type]
        if not owners:
            raise TypeError(f"no settings class declares {key!r}")
        own.setdefault(owners[0], {})[key] = value
    return platform, own

"""What every command that reads the config shares: the config itself, the tenants named."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from connector.errors import ConfigError

if TYPE_CHECKING:
    from connector.settings import Settings, TenantSettings

OK, FAILED = 0, 1


def load(args: argparse.Namespace) -> tuple[Settings, Path]:
    """The settings ``--config`` (or ``$CONNECTOR_CONFIG``, or ``connector.yaml``) names, and
    the folder relative mapping files in it start from (the config's own: data paths may start
    elsewhere, see ``data_folder``)."""
    from connector.settings import config_path, load_settings

    path = config_path(getattr(args, "config", None))
    return load_settings(path), path.parent


def select_tenants(settings: Settings, names: list[str]) -> dict[str, TenantSettings]:
    """The tenants ``--tenant`` names (all when none); an unknown name is a ``ConfigError``."""
    unknown = [n for n in names if n not in settings.tenants]
    if unknown:
        raise ConfigError(
            f"no tenant named {unknown[0]!r} in the config",
            hint=f"tenants: {', '.join(settings.tenants)}",
        )
    return {n: settings.tenants[n] for n in names} if names else dict(settings.tenants)

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from connector.errors import ConfigError
from connector.settings import CsvSourceSettings, SqlSourceSettings, load_settings
from tests.conftest import SECRET

BASE = {
    "tenants": {
        "acme": {
            "kore": {
                "host": "https://platform.kore.ai",
                "bot_id": "st-1",
                "account_id": "a1",
                "client_id": "cs-1",
                "client_secret": "${ACME_SECRET}",
            },
            "source": {"kind": "csv", "path": "exports/*.csv"},
            "mapping": "salesforce",
        }
    }
}


def _write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "connector.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def test_variables_defaults_and_relative_paths(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SECRET", "s3cr3t-value-0123456789abcdef-32")
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    settings = load_settings(_write(tmp_path, BASE))
    tenant = settings.tenants["acme"]
    assert tenant.kore.client_secret.get_secret_value() == "s3cr3t-value-0123456789abcdef-32"
    assert "s3cr3t-value-0123456789abcdef-32" not in repr(settings)
    assert tenant.kore.batch_size == 1000 and tenant.kore.uploads_per_minute == 60
    assert tenant.source.path == str(tmp_path / "exports/*.csv")
    assert settings.state_url == f"sqlite:///{tmp_path / 'connector-state.db'}"
    assert settings.reports_dir == tmp_path / "reports"


@pytest.mark.parametrize(
    ("state_directory", "data"),
    [
        ("{state}", "{state}"),
        ("{state}:{other}", "{state}"),  # several StateDirectory= folders, joined by ":"
        ("", "{config}"),  # set but empty: as if unset
    ],
)
def test_data_paths_start_from_the_state_directory_when_it_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, state_directory: str, data: str
) -> None:
    folders = {"state": tmp_path / "state", "other": tmp_path / "other", "config": tmp_path}
    monkeypatch.setenv("ACME_SECRET", SECRET)
    monkeypatch.setenv("STATE_DIRECTORY", state_directory.format(**folders))
    config = yaml.safe_load(yaml.safe_dump(BASE))
    config["tenants"]["acme"]["mapping"] = "mappings/acme.yaml"
    config["tenants"]["other"] = yaml.safe_load(yaml.safe_dump(BASE["tenants"]["acme"]))
    config["tenants"]["other"]["source"] = {"kind": "sql", "url": "sqlite:///crm.db", "table": "c"}
    config["reports_dir"] = "reports"
    settings = load_settings(_write(tmp_path, config))
    base = Path(data.format(**folders))
    assert settings.state_url == f"sqlite:///{base / 'connector-state.db'}"
    assert settings.reports_dir == base / "reports"
    csv, sql = settings.tenants["acme"].source, settings.tenants["other"].source
    assert isinstance(csv, CsvSourceSettings) and isinstance(sql, SqlSourceSettings)
    assert csv.path == str(base / "exports/*.csv")
    assert sql.url == f"sqlite:///{base / 'crm.db'}"
    assert settings.tenants["acme"].mapping == "mappings/acme.yaml", "read beside the config"


def test_absolute_paths_and_server_urls_ignore_the_state_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SECRET", SECRET)
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    monkeypatch.setenv("CONNECTOR_STATE_URL", "postgresql+psycopg://u@db/state")
    config = yaml.safe_load(yaml.safe_dump(BASE))
    config["tenants"]["acme"]["source"]["path"] = "/srv/exports/*.csv"
    config["reports_dir"] = "/srv/reports"
    settings = load_settings(_write(tmp_path, config))
    assert settings.state_url == "postgresql+psycopg://u@db/state"
    assert settings.reports_dir == Path("/srv/reports")
    source = settings.tenants["acme"].source
    assert isinstance(source, CsvSourceSettings) and source.path == "/srv/exports/*.csv"


def test_environment_overrides_settings_that_are_not_per_tenant(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SECRET", SECRET)
    monkeypatch.setenv("CONNECTOR_STATE_URL", "postgresql+psycopg://u@db/state")
    assert load_settings(_write(tmp_path, BASE)).state_url == "postgresql+psycopg://u@db/state"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t["kore"].update(extra=1), "tenants.acme.kore.extra is not a known setting"),
        (lambda t: t["kore"].pop("client_id"), "tenants.acme.kore.client_id is required"),
        (lambda t: t["kore"].update(host="http://kore.example.com"), "must be https"),
        (lambda t: t.update(schedule={"every": "soon"}), "must look like 30s"),
        (lambda t: t.update(schedule={"every": "0m"}), "schedule.every must be longer than zero"),
        (lambda t: t.update(schedule={"every": "1m", "jitter": "0s"}), "jitter must be longer"),
        (lambda t: t.update(schedule={"every": "1m", "cron": "* * * * *"}), "exactly one"),
        (lambda t: t.update(changes={"removed": "wipe"}), "tenants.acme.changes.removed"),
        (lambda t: t.update(changes={"max_delete_fraction": 2}), "max_delete_fraction"),
        (
            lambda t: t.update(
                source={
                    "kind": "sql",
                    "url": "sqlite://",
                    "table": "c",
                    "cursor": "u",
                    "snapshot": True,
                }
            ),
            "'snapshot: true' or 'cursor', not both",
        ),
        (lambda t: t.update(changes={"renamed": "rename"}), "tenants.acme.changes.renamed"),
        (lambda t: t.update(schedule={"cron": "not a cron"}), "not a crontab"),
        (lambda t: t["source"].update(kind="ftp"), "tenants.acme.source"),
    ],
)
def test_invalid_settings_name_their_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change,
    message: str,  # type: ignore[no-untyped-def]
) -> None:
    monkeypatch.setenv("ACME_SECRET", "never-shown-secret-0123456789abcdef")
    data = yaml.safe_load(yaml.safe_dump(BASE))
    change(data["tenants"]["acme"])
    with pytest.raises(ConfigError, match=message) as caught:
        load_settings(_write(tmp_path, data))
    assert "never-shown-secret-0123456789abcdef" not in str(caught.value)


@pytest.mark.parametrize("host", ["http://127.0.0.1:8765", "http://localhost:1", "http://[::1]:80"])
def test_plain_http_is_allowed_for_loopback_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    monkeypatch.setenv("ACME_SECRET", SECRET)
    data = yaml.safe_load(yaml.safe_dump(BASE))
    data["tenants"]["acme"]["kore"]["host"] = host
    assert load_settings(_write(tmp_path, data)).tenants["acme"].kore.host == host


def test_missing_file_and_bad_yaml_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_settings(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_settings(bad)


def test_daemon_settings_and_report_retention_have_defaults_and_limits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_SECRET", SECRET)
    data = yaml.safe_load(yaml.safe_dump(BASE))
    settings = load_settings(_write(tmp_path, data))
    assert (settings.daemon.lease_seconds, settings.daemon.stop_grace_seconds) == (60, 30)
    assert settings.reports_keep_days == 30
    data["daemon"] = {"lease_seconds": 1}
    with pytest.raises(ConfigError, match=r"daemon\.lease_seconds"):
        load_settings(_write(tmp_path, data))
    data["daemon"] = {"lease_secs": 10}
    with pytest.raises(ConfigError, match=r"daemon\.lease_secs is not a known setting"):
        load_settings(_write(tmp_path, data))

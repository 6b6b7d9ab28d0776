"""The `zhongtai` command: administration commands against the tier's database."""

from __future__ import annotations

import asyncio
import json

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from zhongtai.cli.main import app
from zhongtai.core.models import ApiToken, AuditEvent, Tenant, User
from zhongtai.core.runtime import Runtime
from zhongtai.core.settings import Settings


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("ZT_ENV", "test")
    monkeypatch.setenv("ZT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ZT_DATABASE_URL", str(settings.database_url))
    monkeypatch.setenv("ZT_LOG_JSON", "false")
    return settings


def run(*args: str) -> dict[str, object]:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


async def test_tenant_user_and_token_commands(cli_env: Settings, runtime: Runtime) -> None:
    # The CLI runs its own event loop, so it is called from a thread here.
    created = await asyncio.to_thread(
        run,
        "tenant",
        "create",
        "cli-brand",
        "--name",
        "命令行酒业",
        "--owner-email",
        "boss@cli.example",
        "--owner-password",
        "correct horse battery",
    )
    assert created["slug"] == "cli-brand"
    user = await asyncio.to_thread(
        run,
        "user",
        "create",
        "ops@cli.example",
        "--tenant",
        "cli-brand",
        "--role",
        "auditor",
        "--password",
        "correct horse battery",
    )
    assert user["role"] == "auditor"
    token = await asyncio.to_thread(
        run, "token", "create", "line 3 printer", "--tenant", "cli-brand", "--scope", "users.read"
    )
    assert token["scopes"] == ["users.read"]
    async with runtime.db.unit_of_work(all_tenants=True) as session:
        tenant = await session.scalar(select(Tenant).where(Tenant.slug == "cli-brand"))
        assert tenant is not None
        emails = sorted(await session.scalars(select(User.email).where(User.tenant_id == tenant.id)))
        tokens = list(await session.scalars(select(ApiToken).where(ApiToken.tenant_id == tenant.id)))
        actions = sorted(await session.scalars(select(AuditEvent.action).where(AuditEvent.tenant_id == tenant.id)))
    assert emails == ["boss@cli.example", "ops@cli.example"]
    assert [t.name for t in tokens] == ["line 3 printer"]
    assert actions == ["token.create", "user.create"]


def test_cli_errors_are_clear(cli_env: Settings) -> None:
    result = CliRunner().invoke(app, ["user", "create", "x@y.example", "--tenant", "nope", "--password", "p" * 12])
    assert result.exit_code == 1
    assert "No tenant with code 'nope'" in result.output
    weak = CliRunner().invoke(
        app,
        ["tenant", "create", "weak-brand", "--name", "W", "--owner-email", "w@w.example", "--owner-password", "short"],
    )
    assert weak.exit_code == 1
    assert "Password refused" in weak.output


def test_migrate_check_reports_agreement(cli_env: Settings) -> None:
    result = CliRunner().invoke(app, ["migrate", "--check"])
    assert result.exit_code == 0, result.output
    assert "models and migrations agree" in result.output

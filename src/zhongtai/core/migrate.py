"""Schema migrations (Alembic) run programmatically: `zhongtai migrate`, tests and the demo."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from zhongtai.core.settings import Settings

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def alembic_config(settings: Settings) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", str(settings.database_url).replace("%", "%%"))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(rev)s_%%(slug)s")
    return config


def upgrade(settings: Settings, revision: str = "head") -> None:
    command.upgrade(alembic_config(settings), revision)


def check(settings: Settings) -> None:
    """Raise when the models and the migrations disagree (alembic check)."""
    command.check(alembic_config(settings))


def revision(settings: Settings, message: str) -> None:
    command.revision(alembic_config(settings), message=message, autogenerate=True)


async def upgrade_async(settings: Settings, revision: str = "head") -> None:
    """Upgrade from inside a running event loop (demo loader, tests)."""
    from sqlalchemy.engine import Connection

    from zhongtai.core.db import create_engine

    engine = create_engine(settings)

    def run(connection: Connection) -> None:
        config = alembic_config(settings)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    try:
        async with engine.begin() as connection:
            await connection.run_sync(run)
    finally:
        await engine.dispose()

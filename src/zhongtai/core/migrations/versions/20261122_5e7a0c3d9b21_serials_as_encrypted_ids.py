"""item serials are encrypted code ids: no unique index on every serial

Revision ID: 5e7a0c3d9b21
Revises: 7f0dc76fafe9
Create Date: 2026-11-22 04:00:00.000000

The global unique index on `codes.serial` becomes a partial one over containers (level <> 1); the
random item serials made before keep their own index in `code_legacy_serials`. On SQLite `codes.id`
becomes INTEGER PRIMARY KEY (the rowid), which needs the table rebuilt.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "5e7a0c3d9b21"
down_revision = "7f0dc76fafe9"
branch_labels = None
depends_on = None

SERIAL = sa.String(length=20).with_variant(sa.String(length=20, collation="C"), "postgresql")
COLUMNS = "id, tenant_id, serial, level, state, parent_id, lot_id, changed_at"


def _rebuild_sqlite_codes(id_type: str, serial_unique: bool) -> None:
    op.execute("DROP INDEX IF EXISTS ix_codes_parent")
    op.execute("DROP INDEX IF EXISTS uq_codes_container_serial")
    unique = ", CONSTRAINT uq_codes_serial UNIQUE (serial)" if serial_unique else ""
    op.execute(
        f"CREATE TABLE codes_rebuilt (id {id_type} NOT NULL, tenant_id CHAR(32) NOT NULL, "
        "serial VARCHAR(20) NOT NULL, level SMALLINT NOT NULL, state SMALLINT NOT NULL, parent_id BIGINT, "
        f"lot_id CHAR(32), changed_at DATETIME, CONSTRAINT pk_codes PRIMARY KEY (id){unique})"
    )
    op.execute(f"INSERT INTO codes_rebuilt ({COLUMNS}) SELECT {COLUMNS} FROM codes ORDER BY id")  # noqa: S608
    op.execute("DROP TABLE codes")
    op.execute("ALTER TABLE codes_rebuilt RENAME TO codes")
    op.execute("CREATE INDEX ix_codes_parent ON codes (parent_id) WHERE parent_id IS NOT NULL")


def upgrade() -> None:
    op.create_table(
        "code_legacy_serials",
        sa.Column("serial", SERIAL, nullable=False),
        sa.Column("code_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_code_legacy_serials")),
    )
    op.execute("INSERT INTO code_legacy_serials (serial, code_id) SELECT serial, id FROM codes WHERE level = 1")
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("serial_key_version", sa.SmallInteger(), nullable=True))
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_codes("INTEGER", serial_unique=False)
    else:
        op.drop_constraint("uq_codes_serial", "codes", type_="unique")
    op.create_index(
        "uq_codes_container_serial",
        "codes",
        ["serial"],
        unique=True,
        postgresql_where="level <> 1",
        sqlite_where=sa.text("level <> 1"),
    )


def downgrade() -> None:
    op.drop_index("uq_codes_container_serial", table_name="codes")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_sqlite_codes("BIGINT", serial_unique=True)
    else:
        op.create_unique_constraint("uq_codes_serial", "codes", ["serial"])
    with op.batch_alter_table("code_batches", schema=None) as batch_op:
        batch_op.drop_column("serial_key_version")
    op.drop_table("code_legacy_serials")

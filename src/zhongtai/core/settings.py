"""Configuration from `ZT_*` environment variables.

In development and test, missing secrets are generated once and kept in `<data dir>/secrets.json`
(mode 0600) so that `make demo` works on a fresh clone without any secret in the repository.
In production every secret must be given explicitly and none may be a known development value.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Environment = Literal["development", "test", "production"]

# Values that appear in docs and examples; refusing them outside development keeps a copy-pasted
# example from becoming a production secret.
KNOWN_WEAK_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev", "development", "zhongtai"})
MIN_SECRET_BYTES = 32
_ASYNC_DRIVERS = (
    ("postgres://", "postgresql+asyncpg://"),
    ("postgresql://", "postgresql+asyncpg://"),
    ("sqlite:///", "sqlite+aiosqlite:///"),
)


class InsecureConfiguration(RuntimeError):
    """Raised at start-up when production settings are unsafe."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ZT_", extra="ignore", frozen=False)

    env: Environment = "development"
    data_dir: Path = Path("var")
    database_url: str | None = Field(default=None, description="SQLAlchemy async URL; SQLite under data_dir if unset")
    database_pool_size: int = 10
    # PostgreSQL connections older than this are replaced at checkout (before proxies and firewalls
    # drop idle ones); dead ones are replaced at checkout too, without a ping per request.
    database_pool_recycle_seconds: int = 1800
    redis_url: str | None = None
    redis_prefix: str = "zt:"

    secret_key: SecretStr | None = Field(default=None, description="signs cookies and session tokens")
    pii_keys: SecretStr | None = Field(
        default=None, description="AES-256-GCM keys for personal data, 'version:base64,version:base64'"
    )
    lookup_key: SecretStr | None = Field(default=None, description="HMAC key for lookups of encrypted data")
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token Prometheus sends to scrape /metrics; unset, /metrics answers 404",
    )

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    public_url: str = "http://127.0.0.1:8000"
    cookie_secure: bool | None = None
    session_hours: int = 12
    default_locale: Literal["zh-CN", "en"] = "zh-CN"

    log_level: str = "INFO"
    log_json: bool = True

    in_process_worker: bool = True
    worker_poll_seconds: float = 1.0
    job_max_attempts: int = 8

    sms_backend: Literal["sandbox"] = "sandbox"
    otp_ttl_seconds: int = 300
    scan_requests_per_minute: int = Field(
        default=300,
        ge=1,
        description="requests per minute per network address on the public scan pages and PIN checks",
    )
    scan_write_behind: bool = Field(
        default=True,
        description="PostgreSQL + Redis: PIN checks decided in Redis, scans persisted by a stream worker "
        "(docs/authenticity.md); off, or on the embedded tier, each check is one database transaction",
    )

    flashsale_gate: Literal["auto", "redis", "database"] = Field(
        default="auto",
        description="where flash-sale stock is taken: Redis when configured (auto), or one SQL row (database)",
    )
    flashsale_requests_per_second_per_address: int = Field(
        default=200, ge=1, description="buy requests per second per network address, per server process"
    )
    flashsale_requests_per_minute_per_member: int = Field(
        default=60, ge=1, description="buy requests per minute per member, per server process"
    )

    @model_validator(mode="after")
    def _defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite+aiosqlite:///{self.data_dir.resolve() / 'zhongtai.db'}"
        # Accept the URLs people paste (postgres://, postgresql://, sqlite:///) and pick the async driver.
        for plain, driver in _ASYNC_DRIVERS:
            if self.database_url.startswith(plain):
                self.database_url = driver + self.database_url[len(plain) :]
                break
        if self.cookie_secure is None:
            self.cookie_secure = self.env == "production"
        return self

    @property
    def is_production(self) -> bool:
        return self.env == "production"

    @property
    def is_sqlite(self) -> bool:
        return str(self.database_url).startswith("sqlite")

    @cached_property
    def secrets(self) -> ResolvedSecrets:
        return resolve_secrets(self)


class ResolvedSecrets:
    def __init__(self, secret_key: bytes, pii_keys: dict[int, bytes], lookup_key: bytes) -> None:
        self.secret_key = secret_key
        self.pii_keys = pii_keys
        self.lookup_key = lookup_key

    @property
    def current_pii_version(self) -> int:
        return max(self.pii_keys)


def parse_pii_keys(raw: str) -> dict[int, bytes]:
    keys: dict[int, bytes] = {}
    for part in (piece.strip() for piece in raw.split(",")):
        if not part:
            continue
        version, _, encoded = part.partition(":")
        if not version.isdigit() or not encoded:
            raise InsecureConfiguration("ZT_PII_KEYS must look like '1:<base64 32 bytes>,2:<base64 32 bytes>'")
        key = base64.b64decode(encoded)
        if len(key) != MIN_SECRET_BYTES:
            raise InsecureConfiguration(f"ZT_PII_KEYS key version {version} must be 32 bytes (AES-256)")
        keys[int(version)] = key
    if not keys:
        raise InsecureConfiguration("ZT_PII_KEYS holds no key")
    return keys


def _check_strong(name: str, value: bytes) -> None:
    if value.decode(errors="ignore").strip().lower() in KNOWN_WEAK_SECRETS or len(value) < MIN_SECRET_BYTES:
        raise InsecureConfiguration(f"{name} must be at least {MIN_SECRET_BYTES} random bytes in production")


def _load_or_create_dev_secrets(data_dir: Path) -> dict[str, str]:
    path = data_dir / "secrets.json"
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    data_dir.mkdir(parents=True, exist_ok=True)
    created = {
        "secret_key": secrets.token_urlsafe(48),
        "pii_keys": "1:" + base64.b64encode(secrets.token_bytes(32)).decode(),
        "lookup_key": secrets.token_urlsafe(48),
    }
    # Several processes may start at once on a fresh clone (granian workers, `zhongtai worker`): write a
    # private temporary file, then link it into place, so that the file appears complete or not at all and
    # exactly one set of secrets wins.
    temporary = data_dir / f".secrets.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(created, handle)
        os.link(temporary, path)
    except FileExistsError:
        winner: dict[str, str] = json.loads(path.read_text())
        return winner
    finally:
        temporary.unlink(missing_ok=True)
    return created


def resolve_secrets(settings: Settings) -> ResolvedSecrets:
    given = {
        "secret_key": settings.secret_key.get_secret_value() if settings.secret_key else None,
        "pii_keys": settings.pii_keys.get_secret_value() if settings.pii_keys else None,
        "lookup_key": settings.lookup_key.get_secret_value() if settings.lookup_key else None,
    }
    if settings.is_production:
        missing = [f"ZT_{name.upper()}" for name, value in given.items() if not value]
        if missing:
            raise InsecureConfiguration(f"production requires {', '.join(missing)} to be set")
        secret_key = str(given["secret_key"]).encode()
        lookup_key = str(given["lookup_key"]).encode()
        _check_strong("ZT_SECRET_KEY", secret_key)
        _check_strong("ZT_LOOKUP_KEY", lookup_key)
        return ResolvedSecrets(secret_key, parse_pii_keys(str(given["pii_keys"])), lookup_key)
    dev = _load_or_create_dev_secrets(settings.data_dir) if not all(given.values()) else {}
    return ResolvedSecrets(
        secret_key=(given["secret_key"] or dev["secret_key"]).encode(),
        pii_keys=parse_pii_keys(given["pii_keys"] or dev["pii_keys"]),
        lookup_key=(given["lookup_key"] or dev["lookup_key"]).encode(),
    )


def check_production_ready(settings: Settings) -> None:
    """Fail fast at start-up: resolving the secrets raises when they are unsafe."""
    _ = settings.secrets
    if settings.is_production and settings.is_sqlite:
        # SQLite is supported in production for a single node, but say so loudly in the logs.
        return

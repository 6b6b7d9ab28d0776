"""Configuration and secrets (core/settings.py): production refuses unsafe secrets, development makes its own."""

from __future__ import annotations

import base64
import json
import os
import stat
import threading
from pathlib import Path

import pytest

from zhongtai.core.crypto import Crypto
from zhongtai.core.settings import InsecureConfiguration, Settings, check_production_ready, resolve_secrets

STRONG = "k" * 16 + "Q9v2xT7pLm4sRz8w"  # 32 characters, not a known example value
PII = "1:" + base64.b64encode(bytes(range(32))).decode()


@pytest.fixture(autouse=True)
def _no_zt_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ZT_"):
            monkeypatch.delenv(name)


def _production(tmp_path: Path, **overrides: str | None) -> Settings:
    values: dict[str, str | None] = {"secret_key": STRONG, "pii_keys": PII, "lookup_key": STRONG[::-1]}
    values.update(overrides)
    given = {name: value for name, value in values.items() if value is not None}
    return Settings(env="production", data_dir=tmp_path, **given)  # type: ignore[arg-type]


def test_production_with_strong_secrets_starts(tmp_path: Path) -> None:
    settings = _production(tmp_path)
    check_production_ready(settings)
    assert settings.cookie_secure is True
    assert settings.secrets.secret_key == STRONG.encode()
    assert settings.secrets.pii_keys == {1: bytes(range(32))}
    assert not (tmp_path / "secrets.json").exists(), "production never writes generated secrets"


def test_production_refuses_missing_secrets(tmp_path: Path) -> None:
    with pytest.raises(InsecureConfiguration, match="production requires ZT_SECRET_KEY, ZT_PII_KEYS, ZT_LOOKUP_KEY"):
        check_production_ready(Settings(env="production", data_dir=tmp_path))
    with pytest.raises(InsecureConfiguration, match="production requires ZT_LOOKUP_KEY to be set"):
        check_production_ready(_production(tmp_path, lookup_key=""))
    assert not (tmp_path / "secrets.json").exists()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("secret_key", "changeme", "ZT_SECRET_KEY must be at least 32 random bytes"),
        ("secret_key", "zhongtai", "ZT_SECRET_KEY must be at least 32 random bytes"),
        ("secret_key", "x" * 31, "ZT_SECRET_KEY must be at least 32 random bytes"),
        ("lookup_key", "secret", "ZT_LOOKUP_KEY must be at least 32 random bytes"),
        ("pii_keys", "not-a-key-list", "ZT_PII_KEYS must look like"),
        ("pii_keys", "1:" + base64.b64encode(b"short").decode(), "must be 32 bytes"),
        ("pii_keys", " , ", "production requires ZT_PII_KEYS|ZT_PII_KEYS holds no key"),
    ],
)
def test_production_refuses_weak_secrets(tmp_path: Path, field: str, value: str, message: str) -> None:
    with pytest.raises(InsecureConfiguration, match=message):
        check_production_ready(_production(tmp_path, **{field: value}))


def test_production_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ZT_ENV", "production")
    monkeypatch.setenv("ZT_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ZT_SECRET_KEY", "changeme")
    monkeypatch.setenv("ZT_PII_KEYS", PII)
    monkeypatch.setenv("ZT_LOOKUP_KEY", STRONG)
    with pytest.raises(InsecureConfiguration):
        check_production_ready(Settings())
    monkeypatch.setenv("ZT_SECRET_KEY", STRONG)
    check_production_ready(Settings())


def test_development_creates_private_secrets_once_and_reuses_them(tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    first = resolve_secrets(Settings(env="development", data_dir=data_dir))
    path = data_dir / "secrets.json"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    stored = json.loads(path.read_text())
    assert set(stored) == {"secret_key", "pii_keys", "lookup_key"}
    assert first.secret_key == stored["secret_key"].encode()
    assert len(first.secret_key) >= 32
    assert len(first.lookup_key) >= 32
    assert first.secret_key != first.lookup_key
    assert set(first.pii_keys) == {1}
    assert len(first.pii_keys[1]) == 32
    again = resolve_secrets(Settings(env="development", data_dir=data_dir))
    assert (again.secret_key, again.pii_keys, again.lookup_key) == (first.secret_key, first.pii_keys, first.lookup_key)
    # A secret given explicitly wins over the file; the others still come from it.
    mixed = resolve_secrets(Settings(env="test", data_dir=data_dir, secret_key=STRONG))  # type: ignore[arg-type]
    assert (mixed.secret_key, mixed.lookup_key) == (STRONG.encode(), first.lookup_key)
    assert sorted(p.name for p in data_dir.iterdir()) == ["secrets.json"]
    # Data encrypted in one run decrypts in the next.
    token = Crypto(first).pii.encrypt("+8613812345678", purpose="consumer.phone")
    assert Crypto(again).pii.decrypt(token, purpose="consumer.phone") == "+8613812345678"


def _start_together(data_dir: Path, count: int) -> tuple[list[bytes], list[BaseException]]:
    barrier = threading.Barrier(count)
    seen: list[bytes] = []
    errors: list[BaseException] = []

    def start_up() -> None:
        barrier.wait()
        try:
            seen.append(resolve_secrets(Settings(env="development", data_dir=data_dir)).secret_key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start_up) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return seen, errors


def test_processes_starting_together_agree_on_the_secrets(tmp_path: Path) -> None:
    for round_number in range(10):
        data_dir = tmp_path / f"round-{round_number}"
        seen, errors = _start_together(data_dir, 8)
        assert errors == []
        assert len(seen) == 8
        assert len(set(seen)) == 1
        assert sorted(p.name for p in data_dir.iterdir()) == ["secrets.json"]
        assert stat.S_IMODE((data_dir / "secrets.json").stat().st_mode) == 0o600

"""Every setting is in the README's Configuration table and in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from shared.config import Settings

pytestmark = pytest.mark.database_independent

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("key", [name.upper() for name in Settings.model_fields])
def test_each_setting_is_documented(key: str) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    assert re.search(rf"^\| `{key}` \|", readme, re.M), f"{key} is missing from the README's Configuration table"
    assert re.search(rf"^#? ?{key}=", example, re.M), f"{key} is missing from .env.example"


def test_the_environment_wins_over_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MAX_SHOTS=5000\nSHUTDOWN_GRACE_SECONDS=7\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHUTDOWN_GRACE_SECONDS", raising=False)
    monkeypatch.setenv("MAX_SHOTS", "9000")
    settings = Settings()
    assert settings.max_shots == 9000 and settings.shutdown_grace_seconds == 7.0

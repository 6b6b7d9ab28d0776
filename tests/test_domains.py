"""`load_all()` — what the worker, the demo loader and the CLI import — knows every permission and job
topic that the web app knows, so that a token "with every scope" really has every scope."""

from __future__ import annotations

import json
import subprocess
import sys

from zhongtai.app import create_app
from zhongtai.core.jobs import HANDLERS
from zhongtai.core.permissions import PERMISSIONS


def test_load_all_registers_what_the_app_registers() -> None:
    create_app()
    probe = (
        "import json; from zhongtai.domains import load_all; load_all();"
        "from zhongtai.core.permissions import PERMISSIONS; from zhongtai.core.jobs import HANDLERS;"
        "print(json.dumps([sorted(PERMISSIONS), sorted(HANDLERS)]))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    permissions, topics = json.loads(result.stdout)
    assert permissions == sorted(PERMISSIONS)
    platform_topics = {topic for topic, handler in HANDLERS.items() if handler.__module__.startswith("zhongtai.")}
    assert platform_topics
    assert set(topics) >= platform_topics

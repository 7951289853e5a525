"""Production settings: refuse to start without secrets, and pass Django's deployment checklist."""

import os
import secrets
import subprocess
import sys

from .conftest import ROOT


def run_manage(*args, env):
    base = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG"}}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_key():
    result = run_manage("check", env={"HANDOVER_ENV": "production", "ALLOWED_HOSTS": "handover.example.com"})
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = run_manage("check", env={"HANDOVER_ENV": "production", "SECRET_KEY": secrets.token_urlsafe(50)})
    assert result.returncode != 0
    assert "ALLOWED_HOSTS must be set" in result.stderr


def test_deploy_check_is_clean_in_production():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={
            "HANDOVER_ENV": "production",
            "SECRET_KEY": secrets.token_urlsafe(50),
            "ALLOWED_HOSTS": "handover.example.com",
        },
    )
    assert result.returncode == 0, result.stderr + result.stdout
    assert "no issues" in result.stdout


def test_development_generates_its_secret_key_once(tmp_path):
    env = {"HANDOVER_ENV": "development", "HANDOVER_VAR_DIR": str(tmp_path)}
    code = "from django.conf import settings; print(settings.SECRET_KEY)"
    first = run_manage("shell", "-v", "0", "-c", code, env=env)
    second = run_manage("shell", "-v", "0", "-c", code, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout
    assert len(first.stdout.strip()) >= 50
    assert (tmp_path / "secret_key").read_text().strip() == first.stdout.strip()


def test_unknown_environment_name_is_refused():
    result = run_manage("check", env={"HANDOVER_ENV": "staging"})
    assert result.returncode != 0
    assert "HANDOVER_ENV must be" in result.stderr

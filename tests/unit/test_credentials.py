"""runner/credentials.py is the one list of remote settings and credentials: the copies that
make and bash need (they cannot import it) and .env.example must name the same variables."""

from __future__ import annotations

import re
import subprocess

from flows.settings import AutomationSettings
from ops.settings import RemoteSettings
from proc import secrets
from runner import credentials, stage_spec
from tests.conftest import ROOT


def _differences(where: str, found: list[str], wanted: tuple[str, ...]) -> list[str]:
    """One line per missing or extra name, saying where to fix it."""
    missing = [f"{where}: missing {name} (listed in runner/credentials.py)" for name in wanted if name not in found]
    extra = [f"{where}: extra {name} (not in runner/credentials.py)" for name in found if name not in wanted]
    return missing + extra


def makefile_remote_vars() -> list[str]:
    """REMOTE_VARS as make expands it (continuation lines and all)."""
    cmd = ["make", "-s", "--no-print-directory", "-C", str(ROOT), "STAMP="]
    cmd += ["--eval=print-remote-vars: ; @echo $(REMOTE_VARS)", "print-remote-vars"]
    return subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60).stdout.split()


def compose_run_secret_names() -> list[str]:
    text = (ROOT / "runner" / "compose-run.sh").read_text()
    found = re.search(r'^SECRET_NAMES="([^"]*)"', text, re.M)
    assert found, 'runner/compose-run.sh: no SECRET_NAMES="..." line'
    return found.group(1).split()


def env_example_names() -> list[str]:
    """Every NAME= in .env.example, commented out or not."""
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", (ROOT / ".env.example").read_text(), re.M)


def test_the_makefile_exports_exactly_the_remote_vars():
    assert _differences("Makefile REMOTE_VARS", makefile_remote_vars(), credentials.REMOTE_VARS) == []


def test_compose_run_sends_the_runner_exactly_the_stage_secrets():
    found = compose_run_secret_names()
    assert _differences("runner/compose-run.sh SECRET_NAMES", found, credentials.STAGE_SECRETS) == []


def test_env_example_documents_every_remote_var_and_nothing_unknown():
    remote = [name for name in env_example_names() if not name.startswith("AUTOMATION_")]
    assert _differences(".env.example", remote, credentials.REMOTE_VARS) == []


def test_env_example_names_only_automation_settings_that_exist():
    known = {AutomationSettings.env_name(field) for field in AutomationSettings.model_fields}
    documented = [name for name in env_example_names() if name.startswith("AUTOMATION_")]
    assert [name for name in documented if name not in known] == []


def test_the_remote_settings_class_reads_exactly_the_remote_vars():
    fields = [RemoteSettings.env_name(field) for field in RemoteSettings.model_fields]
    assert _differences("ops.settings.RemoteSettings", fields, credentials.REMOTE_VARS) == []


def test_the_python_users_take_the_list_itself():
    assert stage_spec.SECRETS == frozenset(credentials.STAGE_SECRETS)


def test_the_secrets_scrubbed_and_the_stage_secrets_are_remote_vars():
    unknown = [name for name in secrets.SECRET_NAMES if name not in credentials.REMOTE_VARS]
    assert unknown == [], "proc/secrets.py SECRET_NAMES: not in runner/credentials.py REMOTE_VARS"
    assert set(credentials.STAGE_SECRETS) <= set(credentials.REMOTE_VARS)


def test_a_difference_is_named():
    assert _differences("Makefile", ["A", "C"], ("A", "B")) == [
        "Makefile: missing B (listed in runner/credentials.py)",
        "Makefile: extra C (not in runner/credentials.py)",
    ]

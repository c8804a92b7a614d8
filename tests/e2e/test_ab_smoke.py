"""`make ab-smoke` end to end: its one JSON line, and the sandbox gone."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow


def test_ab_smoke_is_sticky_trips_the_guardrail_and_fuzzes_clean():
    for tool in ("prometheus", "prometheus-alertmanager"):
        if not shutil.which(tool):
            pytest.skip(f"{tool} not installed (.ci/setup-prometheus.sh)")
    before = set((ROOT / ".smoke").glob("ab-*"))
    done = subprocess.run([sys.executable, "-m", "smoke.ab"], cwd=ROOT, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    keys = {"variants", "sticky", "feedback", "verdict", "promoted", "guardrail_tripped", "fuzz_5xx"}
    assert set(result) == keys
    assert result["variants"] == {"champion": "1", "challenger": "2"}
    assert result["sticky"] is True and result["guardrail_tripped"] is True and result["fuzz_5xx"] == 0
    assert result["feedback"] == 120  # 40 keys x 3 requests, each labelled once
    assert result["promoted"] == (result["verdict"] == "promote")
    assert set((ROOT / ".smoke").glob("ab-*")) == before  # the sandbox is removed

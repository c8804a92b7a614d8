"""The Makefile: each target's recipe is what it says (a merge once left serve-smoke's
recipe line after a blank line, where make adds it to the target above it)."""

from __future__ import annotations

import re
import subprocess

from tests.conftest import ROOT


def test_no_recipe_line_after_a_blank_line():
    lines = (ROOT / "Makefile").read_text().splitlines()
    stray = [
        f"Makefile:{i + 1}: {line.strip()}"
        for i, line in enumerate(lines)
        if i and line.startswith("\t") and not lines[i - 1].strip()
    ]
    assert stray == [], "a recipe line after a blank line belongs to the target above it"


def _dry_run(*args: str) -> list[str]:
    cmd = ["make", "-n", "--no-print-directory", "-C", str(ROOT), *args, "STAMP="]
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.splitlines()


def test_the_smoke_targets_run_their_own_script_with_their_args():
    serve = _dry_run("serve-smoke", "SERVE_SMOKE_ARGS=--epochs 2")
    assert len(serve) == 1 and serve[0].endswith("-m smoke.serve --epochs 2")
    automation = _dry_run("automation-smoke")
    assert not any("serve_smoke" in line for line in automation) and "-m smoke.automation" in automation[-1]


def test_help_lists_every_documented_target_under_a_section_heading_aligned():
    text = (ROOT / "Makefile").read_text()
    documented = re.findall(r"^([a-zA-Z0-9_-]+):.*## ", text, flags=re.MULTILINE)
    out = subprocess.run(
        ["make", "--no-print-directory", "-C", str(ROOT), "help"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    targets = [line for line in out if line.startswith("  make ")]
    headings = [line for line in out if line and not line.startswith(" ")]
    assert [line.split()[1] for line in targets] == documented  # every one, in the Makefile's order
    assert out[1] in headings and len(headings) >= 5  # a heading first, then sections
    assert all(h and "----" not in h and not h.endswith("-") for h in headings)
    assert len({re.match(r"  make \S+ +", line).end() for line in targets}) == 1  # help texts start in one column

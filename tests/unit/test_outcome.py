"""runner/outcome.py: an interrupt or a kill under Docker ends in one line, said once."""

import logging

import pytest
from dvc.exceptions import ReproductionError

from runner import outcome


def test_kills_and_interrupts_name_the_stage_and_say_rerunning_resumes():
    assert outcome.verdict("train", 0, False) is None and outcome.verdict("validate", 1, False) is None
    killed = outcome.verdict("train", 137, False)
    assert killed.startswith("stage train was killed (exit 137: `docker kill`, or out of memory)")
    assert "rerun `make run` to resume" in killed and "last epoch checkpoint" in killed
    assert "out-of-memory killer" in outcome.verdict("evaluate", 137, True)
    assert "checkpoint" not in outcome.verdict("evaluate", 137, True)
    assert outcome.verdict("ingest", 130, False).startswith("stage ingest was interrupted (exit 130)")
    assert outcome.interrupted("") == f"the run was interrupted; {outcome.RESUME}"
    assert outcome.interrupted("train").startswith("the run was interrupted during stage train; rerun")


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException as caught:
        return logging.LogRecord("dvc.cli", logging.ERROR, __file__, 1, "", (), (type(caught), caught, None))


@pytest.fixture
def state():
    return {"stage": "train", "said": ""}


@pytest.fixture
def one_line(state):
    return outcome.OneLine(lambda: dict(state), lambda **info: state.update(info))


def test_dvcs_summary_of_a_stage_failure_stays_when_nothing_was_said(one_line):
    assert one_line.filter(_record(ReproductionError("train")))
    assert one_line.filter(_record(ValueError("anything else")))


def test_dvcs_summary_is_dropped_once_the_launcher_said_the_stage_was_interrupted(one_line, state):
    state["said"] = "train"
    assert not one_line.filter(_record(ReproductionError("train")))
    assert one_line.filter(_record(ValueError("not an interrupt")))  # other errors still show


def test_an_interrupt_outside_a_stage_becomes_the_runners_one_line(one_line, state, capsys):
    state["stage"] = ""
    assert not one_line.filter(_record(KeyboardInterrupt()))  # dvc's `interrupted by the user`
    assert capsys.readouterr().err == f"runner: the run was interrupted; {outcome.RESUME}\n"
    assert state["said"] == "runner"
    assert not one_line.filter(_record(KeyboardInterrupt()))
    assert capsys.readouterr().err == ""  # said once


def test_the_filter_sits_on_dvcs_cli_logger_while_dvc_runs(monkeypatch):
    from dvc.cli import logger

    monkeypatch.setattr(logger, "filters", [])
    with outcome.quiet_dvc(dict, lambda **info: None):
        assert [type(f) for f in logger.filters] == [outcome.OneLine]
    assert logger.filters == []  # dvc run in-process afterwards logs as ever

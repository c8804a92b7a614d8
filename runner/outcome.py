"""One line per interrupted or killed Docker run (issue 12, item 4).

Three layers see an interrupt or a kill: the launcher (which stage, and how it
ended), dvc in the runner (its `ERROR: failed to reproduce ...` summary, or
`interrupted by the user` when no stage was running) and runner/compose-run.sh
(the signal, or the runner's own death). Each would say something; the user
gets one line, from the first layer that knows which stage was hit:

- the launcher prints its verdict (`stage train was interrupted; rerun ...`)
  and records `said` in the runner's record (`.dvc/tmp/runner.lock`);
- the guard drops dvc's summary of a failure the launcher already said, and
  turns dvc's `interrupted by the user` into its own line naming the stage;
- compose-run.sh says something only when nothing was said (the runner was
  killed, or stopped before dvc ran).
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

RESUME = "rerun `make run` to resume: finished stages are not run again"


def resume_hint(stage: str) -> str:
    return RESUME + (", and train continues from its last epoch checkpoint" if stage == "train" else "")


def verdict(stage: str, code: int, oom_killed: bool) -> str | None:
    """One line for a stage that was killed or interrupted, or None for an ordinary exit code."""
    if oom_killed:
        return f"stage {stage} was killed by the out-of-memory killer (exit {code}); {resume_hint(stage)}"
    if code == 137:
        return f"stage {stage} was killed (exit 137: `docker kill`, or out of memory); {resume_hint(stage)}"
    if code in (130, 143):
        return f"stage {stage} was interrupted (exit {code}); {resume_hint(stage)}"
    return None


def interrupted(stage: str) -> str:
    """The runner's line for an interrupt that reached dvc outside a stage's command."""
    where = f" during stage {stage}" if stage else ""
    return f"the run was interrupted{where}; {resume_hint(stage)}"


class OneLine(logging.Filter):
    """On dvc's CLI logger in the runner: drops dvc's summary of an interrupt or kill that
    was already said in one line, and says it once where nobody has. `record()` reads the
    runner's record ({"stage": running stage, "said": who said it}); `mark(**info)` updates it."""

    def __init__(self, record, mark):
        super().__init__()
        self.record, self.mark = record, mark

    def filter(self, rec: logging.LogRecord) -> bool:
        from dvc.exceptions import ReproductionError

        exc = rec.exc_info[1] if rec.exc_info else None
        info = self.record()
        if isinstance(exc, KeyboardInterrupt):
            if not info.get("said"):
                print(f"runner: {interrupted(info.get('stage', ''))}", file=sys.stderr, flush=True)
                self.mark(said="runner")
            return False
        return not (isinstance(exc, ReproductionError) and info.get("said"))


@contextlib.contextmanager
def quiet_dvc(record, mark) -> Iterator[OneLine]:
    """OneLine on dvc's CLI logger (which logs the ERROR summaries) while dvc runs here."""
    from dvc.cli import logger

    one_line = OneLine(record, mark)
    logger.addFilter(one_line)
    try:
        yield one_line
    finally:
        logger.removeFilter(one_line)

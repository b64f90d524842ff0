"""The robustness suite: seeded, reproducible trials in a short CI form and a long form.

``KVBACKUP_ROBUSTNESS_TRIALS`` sets the number of trials per test (default 1: the CI form);
``KVBACKUP_ROBUSTNESS_SEED`` the base seed (default 12); a failing trial names its seed, and
rerunning with that seed repeats it. ``KVBACKUP_ROBUSTNESS_REPORT=FILE`` appends one JSON
line per test (trials, passed, failed, failing seeds) for ``docs/reliability.md``.
"""

from __future__ import annotations

import json
import os
import random
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

TRIALS = max(1, int(os.environ.get("KVBACKUP_ROBUSTNESS_TRIALS", "1")))
SEED = int(os.environ.get("KVBACKUP_ROBUSTNESS_SEED", "12"))
REPORT = os.environ.get("KVBACKUP_ROBUSTNESS_REPORT")


@dataclass
class Trial:
    number: int
    seed: int
    rng: random.Random
    workdir: Path


@dataclass
class Trials:
    """Runs a test's trials, each with its own seed and folder; every trial runs even if
    an earlier one failed, and the test fails naming the failing seeds."""

    name: str
    base: Path
    count: int = TRIALS
    failures: list[tuple[int, str]] = field(default_factory=list)
    passed: int = 0

    def __iter__(self) -> Iterator[Trial]:
        for n in range(self.count):
            seed = SEED * 100_003 + n
            workdir = self.base / f"trial-{n}"
            workdir.mkdir(parents=True)
            yield Trial(n, seed, random.Random(seed), workdir)

    def record(self, trial: Trial, error: BaseException | None) -> None:
        if error is None:
            self.passed += 1
        else:
            text = "".join(traceback.format_exception_only(type(error), error)).strip()
            self.failures.append((trial.seed, text[:2000]))

    def finish(self, started: float) -> None:
        if REPORT:
            with open(REPORT, "a", encoding="utf-8") as fh:
                line = {
                    "test": self.name,
                    "trials": self.passed + len(self.failures),
                    "passed": self.passed,
                    "failed": len(self.failures),
                    "failing_seeds": [s for s, _ in self.failures],
                    "seconds": round(time.time() - started, 1),
                }
                fh.write(json.dumps(line) + "\n")
        if self.failures:
            shown = "\n".join(f"seed {s}: {e}" for s, e in self.failures[:5])
            pytest.fail(f"{len(self.failures)} of {self.count} trials failed:\n{shown}")


@pytest.fixture
def trials(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Trials]:
    """``for trial in trials: with trial_guard(trials, trial): ...``"""
    started = time.time()
    runner = Trials(request.node.nodeid.split("::", 1)[-1], tmp_path)
    yield runner
    runner.finish(started)


class trial_guard:
    """Records a trial's outcome; an assertion error fails the trial, not the loop."""

    def __init__(self, runner: Trials, trial: Trial):
        self.runner, self.trial = runner, trial

    def __enter__(self) -> Trial:
        return self.trial

    def __exit__(self, kind: type | None, error: BaseException | None, tb: object) -> bool:
        if error is not None and not isinstance(error, Exception):
            return False  # KeyboardInterrupt, pytest's own exits: let them through
        self.runner.record(self.trial, error)
        return True

"""Dataset problems: the exception for unusable datasets and the per-load report of skipped input.

Readers never stop at the first bad file. Each problem is recorded with its file (and line for
label files), the bad sample is skipped, and one summary line is logged at the end. Only a
dataset left with no usable sample, or a data YAML that cannot be used at all, raises.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

logger = logging.getLogger("erpose.data")

#: How many individual problems are logged one per line before the rest are only counted.
MAX_LOGGED_PROBLEMS = 20


class DatasetError(ValueError):
    """A dataset, annotation file or data YAML that cannot be used; the message names the path."""


@dataclass
class Problem:
    """One bad input: ``where`` is ``file`` or ``file:line``; ``kind`` groups problems in the summary."""

    where: str
    kind: str
    message: str
    skipped: bool = True

    def __str__(self) -> str:
        action = "skipped" if self.skipped else "fixed"
        return f"{self.where}: {self.message} ({action})"


@dataclass
class LoadReport:
    """Counts of what a reader found, and every problem it met.

    Attributes:
        images: usable images (samples) read.
        persons: persons with at least one labelled keypoint.
        ignore_regions: crowd regions and persons without labelled keypoints.
        skipped: number of samples (images) dropped because of a problem.
        problems: every problem, in reading order.
    """

    images: int = 0
    persons: int = 0
    ignore_regions: int = 0
    skipped: int = 0
    problems: list[Problem] = field(default_factory=list)

    def add(self, where: str, kind: str, message: str, *, skipped: bool = True) -> None:
        """Record a problem; ``skipped=False`` for problems that were repaired (e.g. keypoint dropped)."""
        problem = Problem(where, kind, message, skipped)
        self.problems.append(problem)
        if len(self.problems) <= MAX_LOGGED_PROBLEMS:
            logger.warning("%s", problem)

    @property
    def skipped_reasons(self) -> dict[str, int]:
        """Problem kind -> count, over all problems."""
        return dict(Counter(p.kind for p in self.problems))

    def summary(self, name: str) -> str:
        line = (
            f"{name}: {self.images} images, {self.persons} persons, {self.ignore_regions} ignore regions"
        )
        if self.problems:
            reasons = ", ".join(f"{k} x{v}" for k, v in sorted(self.skipped_reasons.items()))
            line += f"; {self.skipped} samples skipped, {len(self.problems)} problems ({reasons})"
        return line

    def log_summary(self, name: str) -> None:
        if len(self.problems) > MAX_LOGGED_PROBLEMS:
            logger.warning("%s: %d more problems not shown", name, len(self.problems) - MAX_LOGGED_PROBLEMS)
        (logger.warning if self.problems else logger.info)("%s", self.summary(name))

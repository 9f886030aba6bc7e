"""When to run the face detector on video, and when following the faces already found is enough.

A schedule ``N`` runs the detector on every N-th frame. An adaptive schedule ``N:M`` starts at N and
doubles the gap (up to M) each time a detector run only confirms what following already had: the
same faces, none new, none lost. Anything else (a new face, a lost one) brings the gap back to N.
Independently of the schedule the pipeline detects at once after a large change of the frame, a
shot cut or a face that optical flow lost.
"""

from __future__ import annotations

from dataclasses import dataclass

from emolive.models.errors import InputError


@dataclass(frozen=True)
class DetectSchedule:
    """Detect every ``every`` frames, stretching the gap up to ``max_every`` while nothing changes."""

    every: int = 3
    max_every: int = 3

    def __post_init__(self) -> None:
        if self.every < 1:
            raise InputError(f"detect_every (--detect-every) must be at least 1 (1 = run the detector on every frame), got {self.every}")
        if self.max_every < self.every:
            raise InputError(f"detection schedule {self.every}:{self.max_every}: the longest gap must be at least the shortest; "
                             f"write N or N:M with M >= N")

    @classmethod
    def parse(cls, value: int | str | DetectSchedule) -> DetectSchedule:
        """``3`` (fixed) or ``"3:12"`` (adaptive); a schedule passes through."""
        if isinstance(value, DetectSchedule):
            return value
        if isinstance(value, int):
            return cls(value, value)
        first, colon, last = str(value).strip().partition(":")
        try:
            every = int(first)
            return cls(every, int(last) if colon else every)
        except ValueError:
            raise InputError(f"detection schedule '{value}' is not N or N:M (e.g. 3 or 3:12)") from None

    @property
    def adaptive(self) -> bool:
        return self.max_every > self.every

    def __str__(self) -> str:
        return f"{self.every}:{self.max_every}" if self.adaptive else str(self.every)


DEFAULT_SCHEDULE = DetectSchedule(3, 12)
"""Every 3rd frame, stretched up to every 12th while the detector keeps confirming the followed faces."""


class DetectionClock:
    """The running state of a schedule for one stream."""

    def __init__(self, schedule: DetectSchedule) -> None:
        self.schedule = schedule
        self.gap = schedule.every
        self._since = 0

    def reset(self) -> None:
        self.gap, self._since = self.schedule.every, 0

    @property
    def due(self) -> bool:
        """True when this frame should be detected according to the schedule alone."""
        return self._since + 1 >= self.gap

    def followed(self) -> None:
        """This frame's faces were followed, not detected."""
        self._since += 1

    def detected(self, *, confirmed: bool) -> None:
        """The detector ran on this frame; ``confirmed``: it found exactly the faces being followed."""
        self._since = 0
        self.gap = min(self.gap * 2, self.schedule.max_every) if confirmed else self.schedule.every

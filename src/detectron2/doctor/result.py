"""What a check returns: a status, what it saw, and how to fix it."""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Union

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
STATUSES = (OK, WARN, FAIL, SKIP)


@dataclass
class CheckResult:
    name: str
    status: str
    summary: str  # one line: what is true, or what is wrong
    evidence: List[str] = field(default_factory=list)  # the facts the verdict rests on
    fix: List[str] = field(default_factory=list)  # commands or steps, in order
    title: str = ""  # what the check is about (filled in from the check's definition)

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status: expected one of {STATUSES}, got {self.status!r}")

    def to_dict(self) -> Dict[str, object]:
        return {
            "name": self.name,
            "title": self.title,
            "status": self.status,
            "summary": self.summary,
            "evidence": list(self.evidence),
            "fix": list(self.fix),
        }


CheckOutput = Union[CheckResult, Sequence[CheckResult]]


@dataclass(frozen=True)
class Check:
    name: str
    title: str
    run: Callable[..., CheckOutput]  # run(facts) -> one result, or several (named name.part)

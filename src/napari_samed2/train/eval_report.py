"""The scores of an evaluation and their tables: `ObjectScore` (one object, one method) and
`EvaluationReport` (means per suite, data kind and object size, as markdown or JSON)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from .metrics import SIZE_BUCKETS, size_bucket

SUITES = ("2d", "volume", "timelapse", "small", "memory", "real-like")
STACK_SUITES = ("volume", "timelapse", "memory", "real-like")
MODEL = "model"
WATERSHED = "watershed"
RANDOM_WALKER = "random walker"
ZOOMED = f"{MODEL} (zoom)"


@dataclass
class ObjectScore:
    """The Dice of one object under one method; in a stack also how many slices its predicted
    extent is off (`metrics.extent_error`)."""

    suite: str
    kind: str
    sample: int
    obj_id: int
    method: str
    dice: float
    diameter: float
    seconds: float = 0.0
    extent_error: int | None = None


@dataclass
class EvaluationReport:
    """All per-object scores, with the tables of the model card.

    Attributes
    ----------
    model : str
        The model's name.
    scores : list of ObjectScore
    settings : dict
        What was run (suites, quick, seeds, device).
    """

    model: str
    scores: list[ObjectScore] = field(default_factory=list)
    settings: dict = field(default_factory=dict)

    def mean(self, suite: str, method: str, kind: str | None = None) -> float:
        values = [
            s.dice
            for s in self.scores
            if s.suite == suite and s.method == method and (kind is None or s.kind == kind)
        ]
        return float(np.mean(values)) if values else float("nan")

    def within_slices(
        self, suite: str, method: str, slices: int = 1, kind: str | None = None
    ) -> float:
        """Fraction of objects whose predicted extent is at most ``slices`` off (nan if none
        has an extent: 2-D suites)."""
        errors = [
            s.extent_error
            for s in self.scores
            if s.suite == suite and s.method == method and (kind is None or s.kind == kind)
            and s.extent_error is not None
        ]  # fmt: skip
        return float(np.mean([e <= slices for e in errors])) if errors else float("nan")

    def methods(self, suite: str) -> list[str]:
        seen: list[str] = []
        for score in self.scores:
            if score.suite == suite and score.method not in seen:
                seen.append(score.method)
        return seen

    def kinds(self, suite: str) -> list[str]:
        seen: list[str] = []
        for score in self.scores:
            if score.suite == suite and score.kind not in seen:
                seen.append(score.kind)
        return seen

    def summary(self) -> dict[str, dict[str, float]]:
        """Suite -> method -> mean Dice."""
        return {
            suite: {method: self.mean(suite, method) for method in self.methods(suite)}
            for suite in SUITES
            if self.methods(suite)
        }

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "settings": self.settings,
                "summary": self.summary(),
                "scores": [asdict(s) for s in self.scores],
            },
            indent=1,
        )

    def to_markdown(self) -> str:
        """The quality tables: mean Dice per suite and data kind, per method, with margins."""
        lines = [f"### Evaluation of `{self.model}`", ""]
        if self.settings:
            lines += [
                "Settings: "
                + ", ".join(f"{k}={v}" for k, v in self.settings.items() if k != "suites"),
                "",
            ]
        for suite in SUITES:
            methods = self.methods(suite)
            if not methods:
                continue
            lines += [f"#### {SUITE_TITLES[suite]}", ""]
            lines += ["| data | objects | " + " | ".join(methods) + " |"]
            lines += ["|---|---|" + "---|" * len(methods)]
            for kind in [*self.kinds(suite), None]:
                count = len(
                    {
                        (s.sample, s.obj_id, s.kind)
                        for s in self.scores
                        if s.suite == suite and (kind is None or s.kind == kind)
                    }
                )
                cells = [f"{self.mean(suite, m, kind):.3f}" for m in methods]
                label = kind if kind is not None else "**all**"
                lines.append(f"| {label} | {count} | " + " | ".join(cells) + " |")
            lines.append("")
            lines += self._extent_line(suite, methods)
            if MODEL in methods or any(m.startswith(MODEL) for m in methods):
                lines += self._margins(suite, methods)
            if suite in ("small", "2d"):
                lines += self._size_table(suite, methods)
        return "\n".join(lines)

    def _extent_line(self, suite: str, methods: list[str]) -> list[str]:
        if suite not in STACK_SUITES:
            return []
        parts = [
            f"{m} {fraction:.0%}"
            for m in methods
            if not np.isnan(fraction := self.within_slices(suite, m))
        ]
        if not parts:
            return []
        return ["Objects whose predicted extent is within one slice of the truth: "
                + ", ".join(parts) + ".", ""]  # fmt: skip

    def _margins(self, suite: str, methods: list[str]) -> list[str]:
        ours = [m for m in methods if m.startswith(MODEL)]
        others = [m for m in methods if m in (WATERSHED, RANDOM_WALKER)]
        if not ours or not others:
            return []
        out = []
        for mine in ours:
            parts = [
                f"{self.mean(suite, mine) - self.mean(suite, other):+.3f} vs {other}"
                for other in others
            ]
            out.append(f"Margin of {mine} (mean Dice): " + ", ".join(parts) + ".")
        return [*out, ""]

    def _size_table(self, suite: str, methods: list[str]) -> list[str]:
        buckets: dict[str, dict[str, list[float]]] = {}
        for score in self.scores:
            if score.suite != suite:
                continue
            bucket = size_bucket(score.diameter)
            buckets.setdefault(bucket, {}).setdefault(score.method, []).append(score.dice)
        if not buckets:
            return []
        lines = [
            f"Dice by object size ({SUITE_TITLES[suite]}; equivalent diameter in image pixels):",
            "",
            "| size | objects | " + " | ".join(methods) + " |",
            "|---|---|" + "---|" * len(methods),
        ]
        for name, _, _ in SIZE_BUCKETS:
            if name not in buckets:
                continue
            row = buckets[name]
            count = max(len(v) for v in row.values())
            cells = [f"{np.mean(row[m]):.3f}" if m in row else "-" for m in methods]
            lines.append(f"| {name} | {count} | " + " | ".join(cells) + " |")
        return [*lines, ""]


SUITE_TITLES = {
    "2d": "2-D, one positive click per object",
    "volume": "Volumes, one prompted slice per object, propagated both ways",
    "timelapse": "Time-lapses, one prompted frame per object, tracked both ways",
    "small": "Small nuclei (8-20 px) in large fields: whole field vs automatic zoom",
    "memory": "Selective vs SAM2 memory, sequences with noisy and blank frames (clean frames)",
    "real-like": "Real-like volumes (dense nuclei under an axial blur; T1 brain MRI with folded "
    "tissue classes), one prompted slice per object, propagated both ways",
}

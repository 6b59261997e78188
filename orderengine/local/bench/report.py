"""The benchmark's table and JSON: one row a figure, each beside the ceiling
of the part it is built on and the issue's target for it, where there is one."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from orderengine.local.bench.stats import Figure


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class Target:
    """The issue's target for a row: its median (or, with ``of_ratio``, its
    ratio to the ceiling) at least or at most ``value``."""

    at_least: bool
    value: float
    of_ratio: bool = False

    def text(self) -> str:
        return f"{'>=' if self.at_least else '<='} {self.value:g}{'x' if self.of_ratio else ''}"


def number(value: float) -> str:
    """Small figures (ms of CPU, ratios) need the decimals large ones do not."""
    return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"


@dataclass
class Row:
    section: str
    name: str
    figure: Figure
    unit: str
    ceiling: Figure | None = None
    ceiling_name: str = ""
    target: Target | None = None

    def ratio(self) -> float | None:
        if self.ceiling is None or not self.ceiling.median:
            return None
        return self.figure.median / self.ceiling.median

    def met(self) -> bool | None:
        """Whether the median meets the target (None: no target, or no figure)."""
        if self.target is None or not self.figure.rounds:
            return None
        value = self.ratio() if self.target.of_ratio else self.figure.median
        if value is None:
            return None
        return value >= self.target.value if self.target.at_least else value <= self.target.value


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    # Figures that could not be measured, and why.
    failures: list[str] = field(default_factory=list)
    # Tables of their own, printed after the main one (the CPU per order).
    blocks: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        ratio = f" ({row.ratio():.0%} of {row.ceiling_name})" if row.ratio() is not None else ""
        progress(f"{row.section} / {row.name}: {row.figure.median:,.1f} {row.unit}{ratio}")
        return row

    def figure(
        self, section: str, name: str, values: Iterable[float], unit: str, **more: Any
    ) -> Row:
        """Adds the row of ``values`` (one a round): their median, min and max."""
        return self.add(Row(section, name, Figure.of(list(values)), unit, **more))

    def table(self) -> str:
        head = (
            f"{'section':<10} {'figure':<52} {'median':>10} {'min':>10} {'max':>10}  "
            f"{'unit':<12} {'vs ceiling':>10}  target"
        )
        lines = [head, "-" * len(head)]
        for r in self.rows:
            ratio = f"{r.ratio():.0%}" if r.ratio() is not None else ""
            met = r.met()
            target = (
                ""
                if r.target is None
                else (f"{r.target.text()} {'met' if met else 'NOT met' if met is False else ''}")
            )
            f = r.figure
            lines.append(
                f"{r.section:<10} {r.name:<52} {number(f.median):>10} "
                f"{number(f.low):>10} {number(f.high):>10}  {r.unit:<12} {ratio:>10}  "
                f"{target}".rstrip()
            )
        lines += [f"not measured: {failure}" for failure in self.failures]
        for block in self.blocks:
            lines += ["", block]
        return "\n".join(lines)

    def json(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "failures": self.failures,
            "rows": [
                {
                    "section": r.section,
                    "name": r.name,
                    "unit": r.unit,
                    **r.figure.json(),
                    "ceiling": r.ceiling.json() if r.ceiling else None,
                    "ceiling_name": r.ceiling_name,
                    "ratio": r.ratio(),
                    "target": r.target.text() if r.target else None,
                    "met": r.met(),
                }
                for r in self.rows
            ],
        }

"""The benchmark's table and JSON: one row a figure, each beside the ceiling
of the part it is built on and the issue's target for it, where there is one."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from orderengine.local.bench.stats import Figure


def progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


@dataclass
class Row:
    section: str
    name: str
    figure: Figure
    unit: str
    ceiling: Figure | None = None
    ceiling_name: str = ""

    def ratio(self) -> float | None:
        if self.ceiling is None or not self.ceiling.median:
            return None
        return self.figure.median / self.ceiling.median


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)
    # Figures that could not be measured, and why.
    failures: list[str] = field(default_factory=list)

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        ratio = f" ({row.ratio():.0%} of {row.ceiling_name})" if row.ratio() is not None else ""
        progress(f"{row.section} / {row.name}: {row.figure.median:,.1f} {row.unit}{ratio}")
        return row

    def table(self) -> str:
        head = (f"{'section':<10} {'figure':<44} {'median':>10} {'min':>10} {'max':>10}  "
                f"{'unit':<10} {'vs ceiling':>10}")
        lines = [head, "-" * len(head)]
        for r in self.rows:
            ratio = f"{r.ratio():.0%}" if r.ratio() is not None else ""
            f = r.figure
            lines.append(f"{r.section:<10} {r.name:<44} {f.median:>10,.1f} {f.low:>10,.1f} "
                         f"{f.high:>10,.1f}  {r.unit:<10} {ratio:>10}")
        lines += [f"not measured: {failure}" for failure in self.failures]
        return "\n".join(lines)

    def json(self) -> dict[str, Any]:
        return {
            "info": self.info,
            "failures": self.failures,
            "rows": [{"section": r.section, "name": r.name, "unit": r.unit,
                      **r.figure.json(),
                      "ceiling": r.ceiling.json() if r.ceiling else None,
                      "ceiling_name": r.ceiling_name, "ratio": r.ratio()} for r in self.rows],
        }


"""What a launch will cost, shown before anything is launched.

Three numbers: the price per hour, the cost of the lease (what it costs if you
let it run out), and the worst case: the price times the hours to the hard
limit, which no extension can pass.
"""

from __future__ import annotations

import dataclasses

from soong.core.durations import format_hours


@dataclasses.dataclass(frozen=True)
class CostPreview:
    """The cost of one planned launch."""

    instance_type: str
    region: str
    price_cents_per_hour: int
    lease_hours: float
    hard_limit_hours: float
    gpu: str = ""

    @property
    def hourly_usd(self) -> float:
        """US dollars per hour."""
        return self.price_cents_per_hour / 100.0

    @property
    def lease_usd(self) -> float:
        """What the lease costs if the instance runs to its end."""
        return self.hourly_usd * min(self.lease_hours, self.hard_limit_hours)

    @property
    def worst_case_usd(self) -> float:
        """What the instance costs if it runs to the hard limit."""
        return self.hourly_usd * self.hard_limit_hours

    def lines(self) -> list[str]:
        """Human lines for the terminal."""
        gpu = f" ({self.gpu})" if self.gpu else ""
        return [
            f"instance:   {self.instance_type}{gpu} in {self.region}",
            f"price:      ${self.hourly_usd:.2f}/h",
            f"lease:      {format_hours(min(self.lease_hours, self.hard_limit_hours))} = ${self.lease_usd:.2f} "
            "(ends on its own; 'soong extend' adds time)",
            f"worst case: {format_hours(self.hard_limit_hours)} to the hard limit = ${self.worst_case_usd:.2f}",
        ]

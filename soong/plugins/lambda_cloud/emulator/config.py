"""Settings of one emulator: delays, rate limits, capacity defaults, account state."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d+(?:\.\d+)?|\.\d+)\s*s?\s*$")


@dataclasses.dataclass(frozen=True)
class RateLimit:
    """At most ``limit`` requests in any sliding window of ``period`` seconds (``limit`` 0: no limit)."""

    limit: int
    period: float

    @property
    def enabled(self) -> bool:
        """Whether the limit is enforced at all."""
        return self.limit > 0 and self.period > 0

    @classmethod
    def parse(cls, text: str) -> "RateLimit":
        """Parse ``N/SECONDS`` (e.g. ``1/1``, ``5/60``, ``1/0.02``) or ``off``."""
        if text.strip().lower() in ("off", "none", "0"):
            return cls(0, 0.0)
        match = _RATE.match(text)
        if not match:
            raise ValueError(f"rate limit must look like N/SECONDS (e.g. 1/12) or 'off', not {text!r}")
        return cls(int(match.group(1)), float(match.group(2)))

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"limit": self.limit, "period": self.period}


#: Lambda's documented limits: about 1 request per second; 1 launch per 12 seconds.
DOCUMENTED_GENERAL_LIMIT = RateLimit(1, 1.0)
DOCUMENTED_LAUNCH_LIMIT = RateLimit(1, 12.0)


@dataclasses.dataclass
class EmulatorConfig:
    """Everything that shapes the emulator's behaviour; most of it changeable at run time.

    Delays are in emulated seconds (see :class:`~.clock.EmulatorClock`); rate-limit
    periods are real seconds.
    """

    api_key: str = "emulator-api-key"
    boot_delay: float = 2.0  # booting -> active
    terminate_delay: float = 1.0  # terminating -> terminated
    gone_delay: float = 1.0  # terminated -> gone from the list
    restart_delay: float = 1.0  # restart: booting again for this long
    general_limit: RateLimit = DOCUMENTED_GENERAL_LIMIT
    launch_limit: RateLimit = DOCUMENTED_LAUNCH_LIMIT
    rate_limit_style: str = "lambda"  # lambda (JSON envelope) | cloudflare (text/plain "error code: 1015")
    default_capacity: int = 10  # per (type, region) listed with capacity in the seed
    quota: int | None = None  # max instances not yet terminated; None: unlimited
    account_status: str = "active"  # active | inactive | invalid-address
    ip_base: str = "127.10.0.1"  # first public IP handed out (loopback, so a sandbox can bind it)
    record_bodies: bool = False  # keep response bodies in the request log
    random_seed: int | None = None
    admin_token: str | None = None
    max_log_entries: int = 100_000

    def public(self) -> dict[str, Any]:
        """The settings as JSON, without secrets."""
        out = dataclasses.asdict(self)
        out.pop("api_key")
        out.pop("admin_token")
        out["general_limit"] = self.general_limit.to_dict()
        out["launch_limit"] = self.launch_limit.to_dict()
        return out

    def update(self, changes: dict[str, Any]) -> None:
        """Apply a JSON mapping of changes (admin API); raise ValueError on unknown keys or bad values."""
        fields = {f.name: f for f in dataclasses.fields(self)}
        for key, value in changes.items():
            if key not in fields or key in ("api_key", "admin_token"):
                raise ValueError(f"unknown or read-only setting {key!r}")
            if key in ("general_limit", "launch_limit"):
                if isinstance(value, str):
                    value = RateLimit.parse(value)
                elif isinstance(value, dict):
                    value = RateLimit(int(value["limit"]), float(value["period"]))
                else:
                    raise ValueError(f"{key} must be 'N/SECONDS' or {{limit, period}}")
            elif key in ("boot_delay", "terminate_delay", "gone_delay", "restart_delay"):
                value = float(value)
                if value < 0:
                    raise ValueError(f"{key} must not be negative")
            elif key == "account_status" and value not in ("active", "inactive", "invalid-address"):
                raise ValueError("account_status must be active, inactive or invalid-address")
            elif key == "rate_limit_style" and value not in ("lambda", "cloudflare"):
                raise ValueError("rate_limit_style must be lambda or cloudflare")
            elif key == "quota" and value is not None:
                value = int(value)
            setattr(self, key, value)

"""The built-in stand-in for the QTickets REST API (qtickets_api.md §16), used when no real API is configured.

Public surface, used by the resource, the CLI, the tests and the benchmarks:
- `Sandbox`: the seeded account and its HTTP contract (`transport()` in-process, `handle()` per request);
  its ground truth, ARCHITECTURE.md §4 applied to the account as of an instant:
  `expected_sales_daily(now)`, `expected_inventory(now)`, `expected_inventory_after(polls)` (started shows
  keep their last snapshot), `expected_dim_events(now)`, `polled_shows(now)`.
- `SandboxServer` / `serving(...)`: the same answers on a real local port.
- `Resale`: an older paid order's tickets refunded with no webhook and their seats sold again (issue 16).
- `Faults`: injected transient failures (429, 5xx, slow, truncated, HTML) at a seeded rate.
"""

from .account import SANDBOX_BASE_URL, SANDBOX_TOKEN, Account, Resale, Sandbox, parse_resales, render_order
from .faults import KINDS, Faults
from .server import SandboxServer, serving

__all__ = ["KINDS", "SANDBOX_BASE_URL", "SANDBOX_TOKEN", "Account", "Faults", "Resale", "Sandbox",
           "SandboxServer", "parse_resales", "render_order", "serving"]

"""An APP whose module fails while it is imported (``tests.broken_app:sched``)."""

from __future__ import annotations

import luasched

sched = luasched.Scheduler(namespace="broken")
raise RuntimeError("the APP's settings are missing: DATABASE_URL is not set")

"""Imports the feature modules that declare scheduled jobs, so ``bot.jobs`` sees them all."""

import handlers.access  # noqa: F401,E402  (just-in-time access: access-sweep job)
import handlers.alerts  # noqa: F401,E402  (alerts: alerts-poll and alerts-actor-timeouts jobs)
import handlers.identity  # noqa: F401,E402  (identity: directory-refresh and offboarding-sweep jobs)

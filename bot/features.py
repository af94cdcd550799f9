"""Imports the feature modules that declare scheduled jobs, so ``bot.jobs`` sees them all."""

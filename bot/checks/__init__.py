"""Hygiene checks over a stored snapshot: ``catalog`` (the registry) and one module per theme."""

from bot.checks.catalog import CHECKS, Check, CheckContext, Hit, check, iter_checks, load_checks

__all__ = ["CHECKS", "Check", "CheckContext", "Hit", "check", "iter_checks", "load_checks"]

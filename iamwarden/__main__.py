"""``python -m iamwarden``: the ``iamwarden`` command."""

from iamwarden.cli import run

run()

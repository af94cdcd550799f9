"""``python -m iamwarden``: the ``iamwarden`` command."""

import sys

from iamwarden.cli import main

sys.exit(main())

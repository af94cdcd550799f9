"""The old entry point, kept for scripts: ``python -m bot.cli …`` is ``python -m iamwarden …``.

The command line moved to the wiring package (``iamwarden.cli``); the domain's command API is
``bot.commands``. Nothing imports this module.
"""

import runpy

if __name__ == "__main__":
    runpy.run_module("iamwarden", run_name="__main__", alter_sys=True)

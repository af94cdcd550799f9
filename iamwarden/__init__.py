"""The wiring: the only package that knows both rooms (the domain ``bot`` and the Slack layer
``handlers``). It builds the Bolt app and the HTTP server (``iamwarden.app``), the command line
(``iamwarden.cli``) and imports each feature's modules from the one FEATURES list
(``iamwarden.features``, reading ``bot/features.py``)."""

"""The scripted tour's steps, one module per feature (``sandbox.demo.TOUR`` runs them in order)."""

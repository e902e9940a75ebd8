"""The Voila dashboard (notebooks/dashboard.ipynb calls ``dashboard()``)."""

from maskdet.app.dashboard import dashboard

__all__ = ["dashboard"]

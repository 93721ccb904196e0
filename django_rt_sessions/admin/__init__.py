"""The staff side in Django's admin: presets (`presets.py`) and the audit log (`audit.py`).

Django's admin autodiscovery imports this package; importing the modules registers their ModelAdmins.
"""

from . import audit, presets

__all__ = ["audit", "presets"]

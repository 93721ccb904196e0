"""The staff side in Django's admin: presets (`presets.py`), the audit log (`audit.py`) and the relayed
sessions (`relay.py`).

Django's admin autodiscovery imports this package; importing the modules registers their ModelAdmins.
"""

from . import audit, presets, relay

__all__ = ["audit", "presets", "relay"]

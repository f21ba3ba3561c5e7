"""tests/clients holds scripts the client tests run with other interpreters (QGIS's system Python)."""

collect_ignore = ["qgis_check.py"]

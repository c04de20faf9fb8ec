"""Who may send and who may read (`AUTH_MODE=keys`): the registry of sites and their domains
that ingestion checks events against, and the read keys reporting asks for.

Ingestion reads the registry from an in-process snapshot (`registry.py`), so no request waits
for MongoDB; reporting verifies a key by its hash, cached briefly (`keys.py`).
"""

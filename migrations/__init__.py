"""Alembic's scripts, shipped as a package so an installed Parley can migrate its database.

``core.db.upgrade_database`` finds this folder without importing anything in it; keep this
file empty of code, and never import ``env.py`` (it imports every domain's models).
"""

"""Persistence: SQLAlchemy 2 models, engine/session helpers and small repository functions.

Postgres (or the embedded SQLite file) is the source of truth for every job.
"""

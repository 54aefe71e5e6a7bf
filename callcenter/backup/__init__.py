"""Backing up and restoring the database: SQLite through its online backup API, PostgreSQL
through pg_dump and pg_restore (custom format)."""

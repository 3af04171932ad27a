-- 0000_initial down: generated from migrations/versions/0000_initial.py by migrations/sql/generate.py (alembic offline mode); do not edit.

DROP TABLE journal_tags, tags, journals, users;

-- 0000_initial up: generated from migrations/versions/0000_initial.py by migrations/sql/generate.py (alembic offline mode); do not edit.

CREATE TABLE users (
        id serial CONSTRAINT users_pkey PRIMARY KEY,
        email varchar(255) NOT NULL CONSTRAINT users_email_key UNIQUE,
        password_hash varchar(255) NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

CREATE TABLE journals (
        id serial CONSTRAINT journals_pkey PRIMARY KEY,
        user_id integer NOT NULL
            CONSTRAINT journals_user_id_fkey REFERENCES users (id) ON DELETE CASCADE,
        title varchar(255) NOT NULL,
        content text NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    );

CREATE INDEX ix_journals_user_id ON journals (user_id);

CREATE TABLE tags (
        id serial CONSTRAINT tags_pkey PRIMARY KEY,
        name varchar(100) NOT NULL CONSTRAINT tags_name_key UNIQUE
    );

CREATE TABLE journal_tags (
        journal_id integer NOT NULL
            CONSTRAINT journal_tags_journal_id_fkey REFERENCES journals (id) ON DELETE CASCADE,
        tag_id integer NOT NULL
            CONSTRAINT journal_tags_tag_id_fkey REFERENCES tags (id) ON DELETE CASCADE,
        CONSTRAINT journal_tags_pkey PRIMARY KEY (journal_id, tag_id)
    );

CREATE INDEX ix_journal_tags_tag_id ON journal_tags (tag_id);

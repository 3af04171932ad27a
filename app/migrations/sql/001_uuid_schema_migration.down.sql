-- 001_uuid_schema_migration down: generated from migrations/versions/001_uuid_schema_migration.py by migrations/sql/generate.py (alembic offline mode); do not edit.

LOCK TABLE users, journals, tags, journal_tags IN ACCESS EXCLUSIVE MODE;

CREATE SEQUENCE users_id_seq AS integer;

CREATE SEQUENCE tags_id_seq AS integer;

CREATE SEQUENCE journals_id_seq AS integer;

ALTER TABLE users ADD COLUMN new_id integer NOT NULL DEFAULT nextval('users_id_seq');

ALTER TABLE tags ADD COLUMN new_id integer NOT NULL DEFAULT nextval('tags_id_seq');

ALTER TABLE journals ADD COLUMN new_id integer NOT NULL DEFAULT nextval('journals_id_seq'), ADD COLUMN new_user_id integer;

UPDATE journals j SET new_user_id = u.new_id FROM users u WHERE u.id = j.user_id;

ALTER TABLE journal_tags ADD COLUMN new_journal_id integer, ADD COLUMN new_tag_id integer;

UPDATE journal_tags jt SET new_journal_id = j.new_id, new_tag_id = t.new_id FROM journals j, tags t WHERE j.id = jt.journal_id AND t.id = jt.tag_id;

ALTER TABLE journal_tags DROP CONSTRAINT journal_tags_journal_id_fkey, DROP CONSTRAINT journal_tags_tag_id_fkey, DROP CONSTRAINT journal_tags_pkey;

ALTER TABLE journals DROP CONSTRAINT journals_user_id_fkey, DROP CONSTRAINT journals_pkey;

ALTER TABLE users DROP CONSTRAINT users_pkey;

ALTER TABLE tags DROP CONSTRAINT tags_pkey;

DROP INDEX ix_journals_user_id, ix_journal_tags_tag_id;

ALTER TABLE users DROP COLUMN id;

ALTER TABLE users RENAME COLUMN new_id TO id;

ALTER TABLE tags DROP COLUMN id;

ALTER TABLE tags RENAME COLUMN new_id TO id;

ALTER TABLE journals DROP COLUMN id, DROP COLUMN user_id;

ALTER TABLE journals RENAME COLUMN new_id TO id;

ALTER TABLE journals RENAME COLUMN new_user_id TO user_id;

ALTER TABLE journal_tags DROP COLUMN journal_id, DROP COLUMN tag_id;

ALTER TABLE journal_tags RENAME COLUMN new_journal_id TO journal_id;

ALTER TABLE journal_tags RENAME COLUMN new_tag_id TO tag_id;

ALTER TABLE journals ALTER COLUMN id SET NOT NULL, ALTER COLUMN user_id SET NOT NULL;

ALTER TABLE journal_tags ALTER COLUMN journal_id SET NOT NULL, ALTER COLUMN tag_id SET NOT NULL;

ALTER SEQUENCE users_id_seq OWNED BY users.id;

ALTER SEQUENCE tags_id_seq OWNED BY tags.id;

ALTER SEQUENCE journals_id_seq OWNED BY journals.id;

SELECT setval('users_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM users;

SELECT setval('tags_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM tags;

SELECT setval('journals_id_seq', COALESCE(max(id), 1), max(id) IS NOT NULL) FROM journals;

ALTER TABLE users ADD CONSTRAINT users_pkey PRIMARY KEY (id);

ALTER TABLE tags ADD CONSTRAINT tags_pkey PRIMARY KEY (id);

ALTER TABLE journals ADD CONSTRAINT journals_pkey PRIMARY KEY (id);

ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_pkey PRIMARY KEY (journal_id, tag_id);

CREATE INDEX ix_journals_user_id ON journals (user_id);

CREATE INDEX ix_journal_tags_tag_id ON journal_tags (tag_id);

ALTER TABLE journals ADD CONSTRAINT journals_user_id_fkey FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE NOT VALID;

ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_journal_id_fkey FOREIGN KEY (journal_id) REFERENCES journals (id) ON DELETE CASCADE NOT VALID;

ALTER TABLE journal_tags ADD CONSTRAINT journal_tags_tag_id_fkey FOREIGN KEY (tag_id) REFERENCES tags (id) ON DELETE CASCADE NOT VALID;

ALTER TABLE journals VALIDATE CONSTRAINT journals_user_id_fkey;

ALTER TABLE journal_tags VALIDATE CONSTRAINT journal_tags_journal_id_fkey;

ALTER TABLE journal_tags VALIDATE CONSTRAINT journal_tags_tag_id_fkey;

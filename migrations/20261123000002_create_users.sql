-- Users: the second resource (the older seed system's /users).
--
-- Uniqueness is case-insensitive (Alice and alice are the same account), so
-- the unique indexes are on lower(...). The index names are what
-- src/error.rs maps to the conflicting field of a 409 response.
CREATE TABLE IF NOT EXISTS users (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username   TEXT        NOT NULL CHECK (username ~ '^[A-Za-z0-9_.-]{3,50}$'),
    email      TEXT        NOT NULL CHECK (char_length(email) BETWEEN 3 AND 254),
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE UNIQUE INDEX IF NOT EXISTS users_username_key ON users (lower(username));
CREATE UNIQUE INDEX IF NOT EXISTS users_email_key ON users (lower(email));

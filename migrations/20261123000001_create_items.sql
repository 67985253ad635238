-- Items: the first resource of the API.
--
-- id         identity column: monotonic, so keyset pagination can page on
--            "id > last seen id" and a walk never skips or repeats a row even
--            while rows are inserted or deleted.
-- name       stored trimmed; the length limits mirror src/domain/item.rs so
--            the database refuses what the API would refuse.
-- version    optimistic-concurrency counter exposed as the ETag; every
--            UPDATE increments it in the same statement, so two writers can
--            never both succeed against the same version.
CREATE TABLE IF NOT EXISTS items (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name        TEXT        NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
    description TEXT                 CHECK (char_length(description) <= 2000),
    version     INTEGER     NOT NULL DEFAULT 1 CHECK (version >= 1),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

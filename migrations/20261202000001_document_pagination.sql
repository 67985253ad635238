-- What keyset pagination guarantees, recorded in the catalog (\d+ items).
--
-- The first migrations' comments said a walk "never skips" a row while rows
-- are inserted. That is not so: identity values are taken when a row is
-- inserted, not when it commits, so a row that commits after a walk has read
-- past its id is not seen by that walk. Applied migrations cannot be edited
-- (sqlx checks their checksums), so the correction lives here.
COMMENT ON COLUMN items.id IS
    'Keyset pagination key. A walk (id > cursor) returns every row committed before it started exactly once and never a row twice; a row committed after the walk read past its id appears only in the next walk.';
COMMENT ON COLUMN users.id IS
    'Keyset pagination key. A walk (id > cursor) returns every row committed before it started exactly once and never a row twice; a row committed after the walk read past its id appears only in the next walk.';

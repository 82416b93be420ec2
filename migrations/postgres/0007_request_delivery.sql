-- The delivery key of the command that created a request (the signed
-- timestamp and a digest of the body), unique, so a copy of the command
-- inserts nothing: remembering a request-creating command costs no write
-- of its own, and read-only commands remember nothing. NULL for requests
-- made before this column and for chat services without such a key; a
-- unique index lets any number of NULLs stand.
ALTER TABLE requests ADD COLUMN delivery TEXT;
CREATE UNIQUE INDEX requests_delivery ON requests (delivery);

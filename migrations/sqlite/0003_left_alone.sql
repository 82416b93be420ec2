-- Whether the revocation found the binding changed by somebody else during
-- the grant and so left it as it was (shown on the approval card).
ALTER TABLE requests ADD COLUMN left_alone INTEGER NOT NULL DEFAULT 0;

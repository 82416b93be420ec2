-- A request's stage and what exists in it, and the request's own words,
-- become one JSON document, `data` (format v1, read and written by
-- src/store/codec.rs for both backends). Real columns stay only for what
-- queries filter or order on (state, requester, jc_user, system_id, …) and
-- for the approval message, which the outbox writes outside transitions.
-- Existing rows are carried over: each stage takes from the object below
-- the keys it has (a superset for every stage), so no row loses anything.
-- Chat user ids gain their platform (`slack:U…`), as the outbox stores them.
ALTER TABLE requests ADD COLUMN data JSONB;

UPDATE requests SET data = jsonb_build_object(
    'v', 1,
    'reply_to', reply_to,
    'duration_secs', duration_secs,
    'words', words::jsonb,
    'reason', reason,
    'stage', jsonb_build_object(
        'state', state,
        -- Resolving again after a pick: the picked device, for the account
        -- it was offered to.
        'picked', CASE WHEN device IS NOT NULL AND email IS NOT NULL AND jc_user IS NOT NULL
                       THEN jsonb_build_object('account', jsonb_build_object('email', email, 'jc_user', jc_user),
                                               'device', device::jsonb) END,
        'account', CASE WHEN email IS NOT NULL AND jc_user IS NOT NULL
                        THEN jsonb_build_object('email', email, 'jc_user', jc_user) END,
        'device', device::jsonb,
        'candidates', candidates::jsonb,
        'decision', CASE WHEN decided_by IS NOT NULL AND decided_at IS NOT NULL
                         THEN jsonb_build_object('by', platform || ':' || decided_by, 'at', decided_at) END,
        'grant', CASE WHEN prior IS NOT NULL AND expires_at IS NOT NULL
                      THEN jsonb_build_object('prior', prior::jsonb, 'expires_at', expires_at) END,
        'elevated_at', elevated_at,
        -- Every move into revoking set a cause; the revoke job read a
        -- missing one as an expiry.
        'end_cause', COALESCE(end_cause, 'expired'),
        'ended_by', CASE WHEN ended_by IS NOT NULL THEN platform || ':' || ended_by END,
        'ended_at', ended_at,
        'left_alone', left_alone
    )
);

ALTER TABLE requests ALTER COLUMN data SET NOT NULL;

ALTER TABLE requests
    DROP COLUMN reply_to,
    DROP COLUMN duration_secs,
    DROP COLUMN words,
    DROP COLUMN reason,
    DROP COLUMN email,
    DROP COLUMN device,
    DROP COLUMN candidates,
    DROP COLUMN prior,
    DROP COLUMN decided_by,
    DROP COLUMN decided_at,
    DROP COLUMN elevated_at,
    DROP COLUMN expires_at,
    DROP COLUMN ended_at,
    DROP COLUMN ended_by,
    DROP COLUMN end_cause,
    DROP COLUMN left_alone;

-- The requests waiting for a decision, for the approvers' part of the App
-- Home: a partial index holds only those rows, so it stays small and costs
-- a write only when a request enters or leaves pending_approval.
CREATE INDEX requests_pending_approval ON requests (platform, created_at)
    WHERE state = 'pending_approval';

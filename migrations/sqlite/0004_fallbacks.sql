-- Fallback channels (WIT 0.2.0 notifiers): a delivery sent only if the recipient has not read
-- the in-app item of the same notification in time. `fallback_of` is that in-app delivery's
-- id; the send-time policy suppresses this one (`already_read`) when its inbox item is read.
ALTER TABLE deliveries ADD COLUMN fallback_of TEXT;

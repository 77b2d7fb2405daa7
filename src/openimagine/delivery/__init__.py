"""How results leave the server: blob storage, signed URLs, and the outbox sender of webhooks
and uploads (with the TTL sweeper)."""

"""The store: jobs, results, keys, media and the webhook outbox. The store is the queue."""

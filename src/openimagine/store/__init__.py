"""The store is the queue: jobs, results, deliveries, keys, media and workers (see
`protocols`), on SQLite or PostgreSQL (`sql`), or in memory (`memory`)."""

"""Prometheus metrics: what each process records, and how `/metrics` shows them.

- `metrics.instruments`: the counters and histograms the workers (tasks) and the API (the
  outbox's deliveries) record, and multiprocess mode, in which the processes of one command
  write their values to files in a shared directory.
- `metrics.store`: gauges read from the store when `/metrics` is scraped (queue depth by state
  and key class, workers, pending deliveries).
- `metrics.exposition`: the text a scrape gets, its optional bearer token, and the small HTTP
  server of `openimagine worker`.

Nothing here imports the model libraries or the web framework, so both the API and the
workers use it.
"""

"""The Runware wire: task parsing and validation into domain types, acknowledgements and
result items, webhook bodies, and the Runware error envelope. Transport-neutral: `api` runs
it over REST and WebSocket."""

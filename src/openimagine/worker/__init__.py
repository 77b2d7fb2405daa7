"""Worker processes: claim jobs from the store, generate, encode, store results."""

"""HTTP and WebSocket front doors."""

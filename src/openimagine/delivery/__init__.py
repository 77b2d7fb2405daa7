"""How results leave the server: blob storage and signed URLs."""

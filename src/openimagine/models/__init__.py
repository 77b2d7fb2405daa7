"""Model cards: everything a model page promises, as data, plus validation and pricing."""

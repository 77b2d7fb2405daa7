"""OpenAI's video API (`/v1/videos`) as a door: its shapes (`schemas`), its fields mapped
straight to the domain types (`mapping`), form bodies (`forms`), its error envelope
(`errors`), and the routes."""

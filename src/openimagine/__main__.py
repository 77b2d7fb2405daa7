"""`python -m openimagine` → the CLI."""

from __future__ import annotations

from openimagine.cli import main

main()

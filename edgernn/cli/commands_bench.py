"""bench commands (being written)."""

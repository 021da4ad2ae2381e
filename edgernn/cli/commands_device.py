"""device commands (being written)."""

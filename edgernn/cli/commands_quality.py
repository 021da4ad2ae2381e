"""quality commands (being written)."""

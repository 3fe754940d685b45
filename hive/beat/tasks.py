"""Beat maintenance tasks (filled in by the durability work)."""

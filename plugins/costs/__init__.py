"""Built-in costs plugins."""

"""Built-in feeds plugins."""

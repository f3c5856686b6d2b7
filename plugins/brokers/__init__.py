"""Built-in brokers plugins."""

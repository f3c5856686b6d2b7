"""Placeholder: filled in by the data/store work."""

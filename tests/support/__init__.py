"""Helpers shared by the tests: local servers speaking the real protocols (servers.py)."""

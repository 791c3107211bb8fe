"""Consuming registries by Git URL and revision: get, import, update, list, and the Python API."""

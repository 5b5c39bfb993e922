"""Saved runs: replay, export and import, their pages."""

"""Sandbox runs: added with the Sandbox page."""

"""Utilities shared by the entry points."""

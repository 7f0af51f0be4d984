"""Reusable widgets of the window (no engine imports at module level)."""

"""Periodic maintenance tasks and the beat schedule."""

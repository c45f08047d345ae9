"""Kamikaze: prioritised packages with expiry times on a Redis queue, and a
service that calls a consumer whenever the package at the top changes.
"""

__version__ = "1.0.0.dev0"

"""Daemon failover: one active daemon per PostgreSQL journal, the others standing by.

`lease` is the lock that says which daemon is active; `standby` is the
daemon's wait for it and its watch over it once held.
"""

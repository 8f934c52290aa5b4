"""Adapters behind graphdock's ports (Storage, Queue, EventLog)."""

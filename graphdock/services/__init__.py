"""Services, one per API noun: they own the semantics and call the ports."""

"""Protocol adapters over graphdock's services: MCP (assistants as tools) and A2A
(assistants as agents). They sit at the services layer: every run they start goes through
the runs service, every graph they introspect through the assistants service; the HTTP
routes in :mod:`graphdock.api.mcp` and :mod:`graphdock.api.a2a` only hand requests over."""

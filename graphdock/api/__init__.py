"""HTTP only: routes, request models, error mapping and SSE framing."""

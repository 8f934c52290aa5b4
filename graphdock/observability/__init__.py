"""Operating graphdock: metrics, structured logs and traces."""

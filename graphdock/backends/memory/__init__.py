"""In-process Queue and EventLog for the single-process embedded server."""

"""Run execution: turning a pending run into graph output, events and a final status."""

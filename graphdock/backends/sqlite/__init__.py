"""The embedded backend: one SQLite file for graphdock's rows, checkpoints and store."""

"""graphdock: an open-source Agent Server for LangGraph graphs."""

__version__ = "0.1.0"

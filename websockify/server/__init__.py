"""Client side: listeners, accept, sniffing, HTTP routing, static files."""

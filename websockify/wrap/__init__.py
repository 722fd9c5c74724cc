"""Program wrapping: rebind.so, the supervisor and process control."""

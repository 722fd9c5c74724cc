"""Program wrapping: rebind.so, the supervisor, process control, the child reaper and the wrapped program."""

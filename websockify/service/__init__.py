"""Running as a service: daemon mode, pid file, systemd notification and socket activation, logs."""

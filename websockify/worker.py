"""`python -m websockify.worker`: one worker process of `websockify --workers N`,
started by the parent with its settings and listening sockets (service/workers.py)."""
import sys

from .app import run_worker

if __name__ == "__main__":
    sys.exit(run_worker())

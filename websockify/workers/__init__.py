"""--workers N: worker processes serving the same listening sockets (group.py is the
parent's side, link.py a worker's, control.py the messages between them)."""

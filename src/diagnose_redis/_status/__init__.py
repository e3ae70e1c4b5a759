"""What a process tells the fleet and its people: its id claim, identity and family (pre-fork
parent or not), the status reporter with its heartbeats, and one-line alerts on stderr."""

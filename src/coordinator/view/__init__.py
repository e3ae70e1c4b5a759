"""How the commands print: kubectl-style tables for people (cut to the terminal), JSON for
scripts, and the fleet's answers told one line per process."""

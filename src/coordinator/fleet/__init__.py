"""The fleet as the commands read it: specs from flags and files, each process's state,
the wait for a spec to apply, and the census of a big fleet."""

"""The subscriber inside a worker: the listener reads Redis, the applier applies what it
read through the ProbeManager (``mirror``), the outflow sends probe output to the stream,
the flusher merges the aggregates of instruments, a writer per kind."""

# The flusher's writers register themselves on import: with any module of the subscriber.
from diagnose_redis._subscriber import exception_writer as _exception_writer

del _exception_writer

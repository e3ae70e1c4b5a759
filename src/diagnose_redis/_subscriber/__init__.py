"""The subscriber inside a worker: the listener reads Redis, the applier applies what it
read through the ProbeManager (``mirror``), the outflow sends probe output to the stream."""

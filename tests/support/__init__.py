"""What the unit and integration tests share, and never a test module itself.

- ``waiting``: polling a condition against a deadline.
- ``probes``: probes made by a test that clean up after themselves.
- ``servers``: a private redis-server, and a server that never answers.
- ``tls``: certificates of a test CA, and a TLS terminator in front of a plain server.
- ``topologies``: real Sentinel and Cluster set-ups.
- ``fleet``: worker processes (``fleet_worker.py``) and shop workers, and what they report.
- ``cli``: the `coordinator` program, installed (a process) or in-process (click's runner).
- ``app_servers``: gunicorn and Celery serving the example shop.
- ``secure_redis``: a whole fleet's round trip over one URL (ACL, TLS).
- ``wire_fuzz``: Hypothesis strategies of bad messages.
- ``stats_values``: the known values the fleet statistics tests feed their workers.
- Scripts run as processes of their own: ``fleet_worker.py``, ``output_worker.py``,
  ``memory_churn.py``, ``stats_worker.py``.
"""

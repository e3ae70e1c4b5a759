"""Tests against real servers and processes: Redis (standalone, Sentinel, Cluster, TLS),
worker subprocesses, the installed `coordinator`, gunicorn and Celery."""

"""Tests of pure logic, in this process: no server, no subprocess, no connection to Redis."""

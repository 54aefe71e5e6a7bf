"""Benchmarks of the callback queue on PostgreSQL (`python -m bench.run_all`).

They create and drop their own database and are never part of the test suite.
"""

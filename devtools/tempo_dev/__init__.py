"""Tempo's development harness, kept out of the ``tempo`` package that production installs.

``devstack`` starts Airflow with Tempo on loopback (``make demo``, the end-to-end tests, the
benchmarks), ``mailcatcher`` is their SMTP server, ``python -m tempo_dev`` the command for both.
"""

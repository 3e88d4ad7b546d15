"""Tempo's own store: models, engines, migrations and the queries every part shares."""

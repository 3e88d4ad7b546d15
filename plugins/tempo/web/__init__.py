"""Tempo's web view inside Airflow's API server: inbox, task and start forms, process pages, a JSON
API, and the public pages behind emailed links."""

"""Email: rendering from templates, the outbox, and delivery through Airflow's SMTP provider."""

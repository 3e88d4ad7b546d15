"""What DAG authors put in a process: the process wrapper, human steps, notifications."""

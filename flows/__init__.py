"""Automation above DVC: the Prefect flow and Airflow DAG that run the project's own
entry points (pull, reproduce, push, git sync, report), notifications, the drift
trigger and the pre-push hook. DVC stays the one place the pipeline's DAG is written."""

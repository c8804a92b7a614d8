"""Operations a user runs (`make push/pull/mlflow-check/git-sync/dagshub/reproduce/rollback/
check-params/drift-report`, each `python -m ops.NAME`), over a small shared API:

- ops.common: Fail (an expected failure, one line), main
- ops.settings: RemoteSettings, settings (the REMOTE_VARS from the environment over .env)
- ops.retry: classify (auth | transient | permanent) and retrying: the one retry layer
- proc.secrets: redact, the one scrubber of anything printed, logged or sent
- proc.git: git, succeeds, run_git, head: the one way the project runs git
"""

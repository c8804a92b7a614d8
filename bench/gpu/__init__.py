"""Issue 22's GPU measurements: one prepared script for a lent GPU host (run.sh) and its data transport."""

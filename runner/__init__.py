"""Runner infrastructure: starts pipeline stages in sibling containers (the docker executor)."""

"""The smoke harnesses (`python -m smoke.pipeline|serve|sweep|automation`, the *-smoke make
targets), their scratch sandboxes (smoke.sandbox), and the local-server and registered-model
helpers that the benches and the tests share (smoke.servers, smoke.serving)."""

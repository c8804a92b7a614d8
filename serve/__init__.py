"""Model server for the registry's champion: FastAPI app, micro-batching, hot reload, Prometheus metrics."""

"""Shared modules the stages build on; nothing here imports a stage."""

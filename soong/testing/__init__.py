"""Helpers for testing soong and soong plugins: a file-backed keyring backend, free
ports, and contract test suites for provider, tunnel backend and cost sink plugins."""

"""The core of soong: the app, hook specs, plugin host, config, secrets and shared types."""

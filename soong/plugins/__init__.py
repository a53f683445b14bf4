"""soong's built-in plugins. Each is an entry point of the ``soong`` group in setup.py,
registered exactly as a third-party plugin would be."""

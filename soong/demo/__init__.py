"""The scripted tour behind ``soong demo``."""

"""Secrets delivered after boot: SGLang launcher, receiver, courier and the API key."""

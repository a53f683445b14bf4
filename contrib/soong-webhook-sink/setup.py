"""soong-webhook-sink: post soong's cost events to a URL (a Slack incoming webhook, or any JSON endpoint)."""

from setuptools import setup

setup(
    name="soong-webhook-sink",
    version="0.1.0",
    description="A soong cost sink that posts cost events to a webhook (Slack or plain JSON).",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=["soong_webhook_sink"],
    install_requires=["soong>=0.1", "requests>=2.31"],
    extras_require={"test": ["pytest>=7"]},
    # The entry point group "soong" is how soong finds plugins; the name is the plugin's name.
    entry_points={"soong": ["webhook = soong_webhook_sink"]},
)

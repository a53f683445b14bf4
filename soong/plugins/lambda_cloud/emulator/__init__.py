"""A faithful emulator of the Lambda Cloud API v1, for tests and local sandboxes.

``create_app(...)`` returns a WSGI application serving ``/api/v1`` like the real
API (paths, status codes, error codes, bodies), plus a test-control API under
``/_emulator``. Run it with ``soong-lambda-emulator`` (gunicorn) or any WSGI
server; :mod:`soong.testing.emulator` runs it for tests. See docs/lambda.md.
"""

from soong.plugins.lambda_cloud.emulator.app import Emulator, create_app
from soong.plugins.lambda_cloud.emulator.clock import EmulatorClock
from soong.plugins.lambda_cloud.emulator.config import EmulatorConfig, RateLimit
from soong.plugins.lambda_cloud.emulator.faults import FaultPlan, FaultRule

__all__ = ["Emulator", "EmulatorClock", "EmulatorConfig", "FaultPlan", "FaultRule", "RateLimit", "create_app"]

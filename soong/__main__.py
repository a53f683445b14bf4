"""``python -m soong``: the same as the ``soong`` command."""

import sys

from soong.core.app import main

sys.exit(main())

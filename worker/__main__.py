"""``python -m worker`` is ``smsq``."""

from __future__ import annotations

import sys

from worker.cli.commands import main


sys.exit(main())

from __future__ import annotations

import sys

from lab.compose import main

sys.exit(main())

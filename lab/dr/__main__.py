from __future__ import annotations

import sys

from lab.dr import main

sys.exit(main())

"""`python -m lb.soak` (what `make soak` runs)."""

import sys

from lb.soak.run import main

sys.exit(main())

"""tests/security: issue 14's attacks on a live daemon (root, network namespaces, like tests/e2e).

The helpers that drive `lbxdp` in a testbed's lb namespace live in tests/e2e/lbxdp_helpers.py;
this directory reuses them rather than keeping a second copy.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "e2e"))

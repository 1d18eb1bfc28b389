"""Studies: `python -m experiments.<study>`; each writes results/<study>/ (metrics.json, table.md, figures)."""

import os
import sys

# progress bars: when the output is a log file rather than a terminal, refresh at most every 30 s (tqdm reads its
# defaults from TQDM_* variables), so logs are not flooded with carriage-return updates
if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
    os.environ.setdefault("TQDM_MININTERVAL", "30")

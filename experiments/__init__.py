"""Studies on one pipeline: `python -m experiments list | run NAME [--quick] | check | ledger` (or
`python -m experiments.<study>`); each declares its claims in data and the pipeline writes results/<study>/
(metrics.json with provenance and per-seed measurements, table.md, figures). See docs/studies.md."""

import os
import sys

# progress bars: when the output is a log file rather than a terminal, refresh at most every 30 s (tqdm reads its
# defaults from TQDM_* variables), so logs are not flooded with carriage-return updates
if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
    os.environ.setdefault("TQDM_MININTERVAL", "30")

"""Studies: `python -m experiments.<study>`; each writes results/<study>/ (metrics.json, table.md, figures)."""

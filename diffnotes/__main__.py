"""``python -m diffnotes train / sample / fid / bench``."""
from .cli import main

raise SystemExit(main())

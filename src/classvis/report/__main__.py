"""``python -m classvis.report``: the report's command line."""

from classvis.report.cli import main

raise SystemExit(main())

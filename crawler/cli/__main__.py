"""`python -m crawler.cli`: the same entry as the `tagarchive` script."""

import sys

from crawler.cli.main import main

sys.exit(main())

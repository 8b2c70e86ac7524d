"""Let `python -m mission_control ...` behave like the `mission-control` console script."""
import sys

from .cli import main

sys.exit(main())

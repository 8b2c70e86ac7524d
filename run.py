"""Start the Mission Control backup service: `python run.py [--host H] [--port P] [--data-dir D]`."""
import sys

from mission_control.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))

"""`python -m goldmine ...`: the goldmine command, with the working folder on Python's path (as `python -m`
puts it there), so a simulator in a module of the working folder is found by its import path."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())

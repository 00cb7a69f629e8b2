"""`python -m clients ...`; see `clients._cli`."""
import sys

from clients._cli import main

if __name__ == "__main__":
    sys.exit(main())

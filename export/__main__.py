import sys

from export._cli import main

sys.exit(main())

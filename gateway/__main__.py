import sys

from gateway._cli import main

sys.exit(main())

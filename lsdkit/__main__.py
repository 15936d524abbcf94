import sys

from lsdkit.cli import main

sys.exit(main())

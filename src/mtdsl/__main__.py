import sys

from mtdsl.cli import main

sys.exit(main())

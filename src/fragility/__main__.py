import sys

from fragility.cli import main

sys.exit(main())

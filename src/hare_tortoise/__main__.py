"""`python -m hare_tortoise` is the `hare-tortoise` command."""

import sys

from .cli import main

sys.exit(main())

"""`python -m bot` is the same as the `statement-bot` console script."""

from bot.cli import main

raise SystemExit(main())

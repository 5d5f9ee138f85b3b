"""`python -m kubetrain_trainer`: the program of every replica."""

from kubetrain_trainer.main import main

raise SystemExit(main())

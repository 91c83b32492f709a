import sys

from policy_stack.cli import main

sys.exit(main())

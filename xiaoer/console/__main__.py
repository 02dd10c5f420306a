import sys

from xiaoer.console.app import main

sys.exit(main())

from wakeserve.cli import main

raise SystemExit(main())

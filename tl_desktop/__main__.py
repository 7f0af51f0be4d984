from tl_desktop.cli import main

raise SystemExit(main())

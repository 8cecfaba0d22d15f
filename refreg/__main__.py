from refreg.cli import main

raise SystemExit(main())

from fastreg.cli import main

raise SystemExit(main())

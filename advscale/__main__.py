from advscale.cli.main import main

main()

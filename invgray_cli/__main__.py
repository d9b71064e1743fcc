from invgray_cli.cli.app import main

main()

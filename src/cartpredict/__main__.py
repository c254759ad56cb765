from cartpredict.cli import main

main()

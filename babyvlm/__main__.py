from babyvlm.cli import main

main()

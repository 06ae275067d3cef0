"""One module per `canary` subcommand, each with HELP, EXITS, add_arguments(parser) and run(args) -> exit code."""

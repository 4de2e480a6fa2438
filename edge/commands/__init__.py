"""One module per `thermal-edge` subcommand; each defines ``register(subparsers)`` and sets
``func(args) -> int`` on its parser. edge/cli.py discovers them."""

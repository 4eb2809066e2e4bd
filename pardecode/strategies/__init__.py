"""Built-in strategies, registered through the same hook third-party plugins implement."""

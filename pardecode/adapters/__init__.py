"""Built-in backbones, registered through the same hook third-party plugins implement."""

"""Built-in defenses, one module each; importing this package registers them."""

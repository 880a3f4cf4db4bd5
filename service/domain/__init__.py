"""Pure rules of face registration: no I/O, no frameworks, no settings."""

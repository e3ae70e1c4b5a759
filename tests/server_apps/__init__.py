"""Applications the server tests run: a shop whose module takes a while to import."""

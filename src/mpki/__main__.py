"""`python -m mpki` runs the CLI."""

from mpki.cli.main import app

app()

"""The navarch command: the parser and the only code that prints or exits (main), what
each command does (commands), and how progress is shown (live, reporting, redact)."""

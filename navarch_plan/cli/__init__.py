"""The navarch command: the parser (parser), the only code that prints or exits (main),
what each command does (commands, by family in commands_plan, commands_apply,
commands_state; shared helpers in common), how progress is shown (live, reporting,
redact), and shell completion (completion)."""

"""statement-bot: pushes an organisation's new official statements, with incident day counters."""

__version__ = "0.1.0"

"""Pure text: tag names, displayed counters, timestamps, mojibake checks. No I/O."""

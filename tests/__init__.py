"""tagarchive test suite."""

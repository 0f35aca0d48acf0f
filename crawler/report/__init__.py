"""The report: a tag's growth as one self-contained HTML page (and PNG charts)."""

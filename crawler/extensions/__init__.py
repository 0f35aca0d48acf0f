"""Scrapy extensions and run-wide components: the run record, health checks, logging."""

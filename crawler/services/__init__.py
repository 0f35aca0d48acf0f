"""Services that run outside Scrapy: watch config, scheduler, status, job queue, reparse, demo."""

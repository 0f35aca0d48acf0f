"""Services that run outside Scrapy: watch config, scheduler, status, reparse, demo (the job queue
they fill is crawler/spiders/jobqueue.py, beside the worker spider that takes from it)."""

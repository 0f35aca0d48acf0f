"""The spiders: the snapshot spider, the backfill (timeline) spider and the Redis-fed worker."""

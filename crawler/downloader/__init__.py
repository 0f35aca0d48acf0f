"""The downloader layer: middlewares, Chromium discovery and page capture, sign-in sessions."""

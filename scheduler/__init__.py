"""Scheduler: the endpoint pool and the routing decision.

Decision code here is pure: it reads immutable snapshots and takes the clock and the
random source as arguments. I/O (scraping workers) lives in :mod:`scheduler.scraper`.
"""

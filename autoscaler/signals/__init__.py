"""Signals the autoscaler decides on: arrival rate, TTFT and ITL percentiles, queued
requests per model, from Prometheus's query API or by scraping ``/metrics`` directly."""

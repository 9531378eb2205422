"""Autoscaler: scales worker pools against latency SLOs on spot and on-demand capacity.

``policy`` holds the pure decisions, ``controller`` the Kubernetes controller, ``signals``
the metric readers, ``replay`` the virtual-time what-if.
"""

"""Worker discovery from Kubernetes: EndpointSlices of the workers' Services -> worker URLs.

Layers, inward first:

- ``slices``: pure; list and watch events -> the set of ready, non-terminating worker URLs.
- ``watch``: the list-then-watch protocol (relist on 410 Gone, backoff on errors) over any
  object with ``list()`` and ``watch(resource_version)``; blocking, clock-free.
- ``bridge``: runs that blocking loop in a thread and hands each new URL set to the event
  loop.
- ``kube``: the only module that imports the Kubernetes client (loaded only when the
  gateway is configured with ``discovery.kubernetes``).

``settings`` holds the typed ``discovery.kubernetes`` section.
"""

from scheduler.discovery.settings import KubernetesDiscoverySettings

__all__ = ["KubernetesDiscoverySettings"]

"""The Kubernetes controller behind ``tidegate autoscaler``: ModelScaler objects in, each
pool's ``/scale`` out. Decision code is pure (:mod:`reconcile`, :mod:`status`); only
:mod:`kube` imports the Kubernetes client."""

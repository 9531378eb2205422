"""Routing plugins: filters, scorers and pickers, each small and separately tested."""

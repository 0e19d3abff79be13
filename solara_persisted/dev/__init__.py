"""Tools for trying solara-persisted out, never imported by a server: ``demo`` (the scripted,
in-process failover), ``fleet`` (the ``--fleet`` demo: real ``solara run`` instances) and
``proxy`` (the loopback load balancer between them, which can cut and half-open links)."""

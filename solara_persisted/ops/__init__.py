"""Operator tools for the command line (``solara-persisted doctor``); a server never imports them."""

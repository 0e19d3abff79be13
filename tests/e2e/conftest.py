"""The end-to-end tests' fixtures: a loopback fleet of real `solara run` processes, and Chromium."""

from fleet import browser_fixture, chromium_fixture, fleet_fixture, page_fixture, solara_cdn_assets_fixture  # noqa: F401

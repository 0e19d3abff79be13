"""Schema tooling, run before a deploy and in tests, never by a server.

``apps`` loads the app that declares the specs; ``documents`` are the committed JSON Schemas;
``diff`` judges how a key's stored form changed; ``codegen`` writes the documents and migration
stubs; ``check`` is the deploy gate (the only user of ``jsonschema``); ``goldens`` restore
committed payloads through the real engine (the pytest plugin's snapshot tests); ``project``
reads ``[tool.solara-persisted]``, shared by the CLI and the plugin.
"""

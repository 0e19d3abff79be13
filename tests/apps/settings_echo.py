"""Prints one line, ``SETTINGS {json}``: the values Solara parsed, then the ones solara-persisted did.

Solara's are read before solara_persisted is imported: activation overwrites some of them
(auto re-mount, test eviction, the cull timeout) in-process.
"""

import importlib
import json

import attrs
import solara
import solara.server.settings as server_settings

state, session, kernel = server_settings.state, server_settings.session, server_settings.kernel
parsed_by_solara = {
    "SOLARA_STATE_ALLOW_PICKLE": state.allow_pickle,
    "SOLARA_STATE_AUTO_REMOUNT": state.auto_remount,
    "SOLARA_STATE_TEST_EVICTION": state.test_eviction,
    "SOLARA_SESSION_HTTP_ONLY": session.http_only,
    "SOLARA_STATE_CONNECT_TIMEOUT": state.connect_timeout,
    "SOLARA_KERNEL_CULL_TIMEOUT": solara.util.parse_timedelta(kernel.cull_timeout),
    "SOLARA_STATE_BREAKER_FAILURES": state.breaker_failures,
    "SOLARA_KERNEL_MAX_PER_SESSION": kernel.max_per_session,
    "SOLARA_STATE_WARN_VALUE_BYTES": state.warn_value_bytes,
    "SOLARA_STATE_MAX_VALUE_BYTES": state.max_value_bytes,
    "SOLARA_STATE_BAILOUT_STORM_THRESHOLD": state.bailout_storm_threshold,
}

solara_integration = importlib.import_module("solara_persisted.solara_integration")  # activates
active = solara_integration.engine()
print(
    "SETTINGS " + json.dumps({"solara": parsed_by_solara, "ours": attrs.asdict(active.settings)}), flush=True
)


@solara.component
def Page() -> None:
    solara.Text("settings echo")

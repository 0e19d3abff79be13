// solara-persisted: make the client's give-up verdict visible.
//
// On a reconnect that cannot be restored (a bail-out, a changed client bundle) Solara's page
// sets `needsRefresh` and shuts its kernel down. Solara 1.64's vuetify-3 page does not render its
// alert for it (its Vue root stops re-rendering once the socket drops), so the user would keep
// looking at a dead page. This plain-DOM banner, independent of Vue, says so instead; it stays
// out of the way when Solara's own alert or dialog is on screen, or when the page reloads itself
// (SOLARA_THEME_FORCE_REFRESH).
(function () {
    var MESSAGE = "Could not restore session. Please refresh the page.";
    var WATCH_TRIES = 600; // the page's Vue app is created after this script: look for it, 60 s at most

    function solaraShowsIt() {
        return Array.prototype.some.call(document.querySelectorAll(".v-alert, .v-dialog"), function (el) {
            return el.getClientRects().length > 0 && el.textContent.indexOf("Could not restore session") >= 0;
        });
    }

    function show() {
        if (document.getElementById("solara-persisted-refresh") || solaraShowsIt()) {
            return;
        }
        var banner = document.createElement("div");
        banner.id = "solara-persisted-refresh";
        banner.setAttribute("role", "alert");
        banner.style.cssText = [
            "position: fixed", "top: 0", "left: 0", "right: 0", "z-index: 2147483647",
            "display: flex", "align-items: center", "gap: 16px", "padding: 12px 16px",
            "background: #fb8c00", "color: #fff", "font: 500 15px/1.4 Roboto, sans-serif",
            "box-shadow: 0 2px 6px rgba(0, 0, 0, 0.3)",
        ].join(";");
        var text = document.createElement("span");
        text.textContent = MESSAGE;
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = "Refresh";
        button.style.cssText = "margin-left: auto; padding: 4px 14px; border: 1px solid #fff; border-radius: 4px; background: transparent; color: #fff; font: inherit; cursor: pointer";
        button.addEventListener("click", function () {
            window.location.reload();
        });
        banner.appendChild(text);
        banner.appendChild(button);
        document.body.appendChild(banner);
    }

    function watch(triesLeft) {
        var app = window.app;
        if (!app || typeof app.$watch !== "function") {
            if (triesLeft > 0) {
                setTimeout(function () { watch(triesLeft - 1); }, 100);
            }
            return;
        }
        app.$watch("needsRefresh", function (needsRefresh) {
            if (needsRefresh && !(window.solara && window.solara.forceRefresh)) {
                setTimeout(show, 300); // let Solara's own alert render first, if it can
            }
        });
    }

    watch(WATCH_TRIES);
})();

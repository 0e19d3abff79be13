// solara-persisted: make the client's verdicts visible where Solara's page cannot (give-up, re-mount).
//
// On a reconnect that cannot be restored (a bail-out, a changed client bundle) Solara's page
// sets `needsRefresh` and shuts its kernel down. Solara 1.64's vuetify-3 page does not render its
// alert for it (its Vue root stops re-rendering once the socket drops), so the user would keep
// looking at a dead page. This plain-DOM banner, independent of Vue, says so instead; it stays
// out of the way when Solara's own alert or dialog is on screen, or when the page reloads itself
// (SOLARA_THEME_FORCE_REFRESH).
//
// The same broken re-render hides Solara's "Restoring session…" overlay during a soft re-mount,
// and once the re-mount ends, Solara's mount point shows its placeholder text ('A widget with
// mount-id="solara-main" should go here') until the new view is attached (docs/operations.md,
// "Browser console during a failover"). So while a re-mount runs, this script hides that
// placeholder and shows a small "Restoring session…" notice of its own.
(function () {
    var MESSAGE = "Could not restore session. Please refresh the page.";
    var RESTORING = "Restoring session…";
    var PLACEHOLDER = "A widget with mount-id="; // Solara's loader-*.html, the mount point's slot text
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

    // --- the soft re-mount: no placeholder text, a notice instead of a blank page ---

    var placeholders = []; // placeholders hidden here that are still in the page
    var remount = false; // a re-mount began and its view is not back yet (the first load is none)

    function hideIn(node) {
        // Solara's mount point renders a <div> holding just its slot text until the view is
        // attached; it may come inserted on its own (a re-mount) or inside its container (the
        // first load). textContent keeps this cheap: no walk unless the text is there at all.
        if (node.nodeType !== 1 || node.textContent.indexOf(PLACEHOLDER) < 0) {
            return false;
        }
        var walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
        var found = false;
        while (walker.nextNode()) {
            var element = walker.currentNode.parentElement;
            if (walker.currentNode.nodeValue.indexOf(PLACEHOLDER) >= 0 && element.tagName === "DIV" &&
                    element.childNodes.length === 1) { // not the page's x-template <script>, which holds the text too
                element.style.visibility = "hidden"; // a throwaway element: Vue replaces it, never patches it
                placeholders.push(element);
                found = true;
            }
        }
        return found;
    }

    function solaraShowsRestoring() {
        return Array.prototype.some.call(document.querySelectorAll(".v-overlay__content"), function (el) {
            return el.getClientRects().length > 0 && el.textContent.indexOf(RESTORING) >= 0;
        });
    }

    function restoringNotice(visible) {
        var notice = document.getElementById("solara-persisted-restoring");
        if (!visible || solaraShowsRestoring()) {
            if (notice) {
                notice.remove();
            }
            return;
        }
        if (notice) {
            return;
        }
        notice = document.createElement("div");
        notice.id = "solara-persisted-restoring";
        notice.setAttribute("role", "status");
        notice.textContent = RESTORING;
        notice.style.cssText = [
            "position: fixed", "top: 16px", "left: 50%", "transform: translateX(-50%)", "z-index: 2147483646",
            "padding: 8px 16px", "border-radius: 16px", "background: rgba(33, 33, 33, 0.85)", "color: #fff",
            "font: 500 14px/1.4 Roboto, sans-serif", "pointer-events: none",
        ].join(";");
        document.body.appendChild(notice);
    }

    function update(app) {
        placeholders = placeholders.filter(function (el) { return el.isConnected; });
        remount = remount && !app.needsRefresh && (app.remounting || placeholders.length > 0);
        restoringNotice(remount);
    }

    function hidePlaceholders(app) {
        // Runs for the page's life, on the inserted nodes only: its cost follows the DOM the
        // page itself inserts. Mutation callbacks run before the next paint: never on screen.
        hideIn(document.body);
        new MutationObserver(function (records) {
            var seen = placeholders.length > 0;
            records.forEach(function (record) {
                Array.prototype.forEach.call(record.addedNodes, function (node) {
                    seen = hideIn(node) || seen;
                });
            });
            if (seen) {
                update(app);
            }
        }).observe(document.body, { childList: true, subtree: true });
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
            update(app);
            if (needsRefresh && !(window.solara && window.solara.forceRefresh)) {
                setTimeout(show, 300); // let Solara's own alert render first, if it can
            }
        });
        hidePlaceholders(app);
        app.$watch("remounting", function (remounting) {
            if (remounting) {
                remount = true;
                update(app);
            }
            // again after Vue's render of the change: the placeholder, if any, is in the page by then
            setTimeout(function () { update(app); }, 0);
        });
    }

    watch(WATCH_TRIES);
})();

// layers-mock dashboard: keeps the server-rendered page live and sends its buttons to /_mock/.
// The server renders all HTML; this script only swaps fragments in, calls the control plane's
// JSON routes, opens dialogs and copies text. It inserts no markup built from data itself.
"use strict";

(() => {
  const REFRESH_MS = 1000;
  const RESET_QUESTION = "Reset everything? Created projects, influencers, jobs, rules and the "
    + "journal are dropped and the clock returns to its start.";
  const TENANT_RESET_QUESTION = "Reset this organization? Its created projects, influencers "
    + "and jobs are dropped and its clock follows the server's again.";
  const token = new URLSearchParams(location.search).get("token");
  // The operator's page moves the server clock; a tenant's page its organization's own.
  const clockPanel = document.getElementById("clock-panel");
  const CLOCK = (clockPanel && clockPanel.dataset.clock) || "/_mock/clock";
  const notice = document.getElementById("notice");
  const dialog = document.getElementById("detail");
  const dialogBody = document.getElementById("detail-body");
  const pause = document.getElementById("pause");

  function headers(extra) {
    const all = Object.assign({}, extra);
    if (token) all.Authorization = "Bearer " + token;
    return all;
  }

  function say(text, ok) {
    notice.textContent = text;
    notice.className = "notice " + (ok ? "ok" : "bad");
  }

  // A control-plane call: JSON in, JSON out; a failure says what the server said.
  async function api(method, path, body) {
    const json = body === undefined ? {} : { "Content-Type": "application/json" };
    const init = { method, headers: headers(json) };
    if (body !== undefined) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      const details = error.details || {};
      const fields = Object.entries(details.fieldErrors || {})
        .map(([name, messages]) => name + ": " + messages.join(" "));
      const reasons = fields.concat(details.formErrors || []);
      const message = error.message || response.status + " " + response.statusText;
      throw new Error(message + (reasons.length ? " " + reasons.join("; ") : ""));
    }
    return data;
  }

  async function html(path) {
    const response = await fetch(path, { headers: headers({}) });
    const text = await response.text();
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = JSON.parse(text).error.message; } catch (_) { /* not the envelope */ }
      throw new Error(message);
    }
    return text;
  }

  // -- live refresh: swap in every element of the fragment whose markup changed -------------
  let timer = null;
  let busy = false;
  let again = false;  // a refresh asked for while one was in flight (after an action) runs next

  function query() {
    const params = new URLSearchParams(location.search);
    params.delete("token");  // sent as a header instead
    const text = params.toString();
    return text ? "?" + text : "";
  }

  // The journal rows of a chosen organization come from its own share: its entry is opened there.
  function shareQuery() {
    const organization = new URLSearchParams(location.search).get("organizationId");
    return organization ? "?organizationId=" + encodeURIComponent(organization) : "";
  }

  async function refresh() {
    if (busy) {
      again = true;
      return;
    }
    busy = true;
    try {
      const template = document.createElement("template");
      template.innerHTML = await html("/_mock/ui/live" + query());
      const focused = document.activeElement && document.activeElement.id;
      for (const fresh of template.content.querySelectorAll("[data-live][id]")) {
        const current = document.getElementById(fresh.id);
        if (current && current.outerHTML !== fresh.outerHTML) current.replaceWith(fresh);
      }
      // a keyboard user's place survives the swap when the element they were on still exists
      if (focused && document.activeElement !== document.getElementById(focused)) {
        const target = document.getElementById(focused);
        if (target) target.focus();
      }
      document.body.dataset.refreshed = String(Date.now());
    } catch (error) {
      say("Live update failed: " + error.message, false);
    } finally {
      busy = false;
      if (again) {
        again = false;
        await refresh();
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (pause.checked || document.hidden) return;
    timer = setTimeout(async () => { await refresh(); schedule(); }, REFRESH_MS);
  }

  async function act(work, done) {
    try {
      const result = await work();
      say(done(result), true);
    } catch (error) {
      say(error.message, false);
    }
    await refresh();
  }

  // -- copying: the Clipboard API where the page is a secure context, a selection otherwise ----
  async function copy(text) {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return;
    }
    const area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "sr-only";
    document.body.appendChild(area);
    area.select();
    const ok = document.execCommand("copy");
    area.remove();
    if (!ok) throw new Error("Copy is not allowed here; select the text instead.");
  }

  async function openDetail(path, opener) {
    try {
      dialogBody.innerHTML = await html(path);  // server-rendered, autoescaped
      dialog.showModal();
      const close = dialog.querySelector(".close");
      if (close) close.focus();
      dialog.addEventListener("close", () => opener && opener.focus(), { once: true });
    } catch (error) {
      say(error.message, false);
    }
  }

  // -- buttons ---------------------------------------------------------------------------------
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-action]");
    if (!button || button.tagName === "FORM") return;
    const data = button.dataset;
    switch (data.action) {
      case "advance":
        act(() => api("POST", CLOCK + "/advance", { seconds: Number(data.seconds) }),
          (r) => "Clock advanced to " + r.now);
        break;
      case "clock-set":
        act(() => api("POST", CLOCK + "/set", { now: data.at }),
          (r) => "Clock set to " + r.now);
        break;
      case "delete-rule":
        act(() => api("DELETE", "/_mock/rules/" + encodeURIComponent(data.rule)),
          () => "Rule " + data.rule + " deleted");
        break;
      case "reset":
        if (window.confirm(data.tenant ? TENANT_RESET_QUESTION : RESET_QUESTION)) {
          // back to the unfiltered page: a project created through the API is gone now
          act(() => api("POST", "/_mock/reset", {}), () => "Reset done")
            .then(() => { location.search = token ? "?token=" + encodeURIComponent(token) : ""; });
        }
        break;
      case "job":
        openDetail("/_mock/ui/jobs/" + encodeURIComponent(data.job), button);
        break;
      case "request":
        openDetail("/_mock/ui/requests/" + encodeURIComponent(data.sequence) + shareQuery(), button);
        break;
      case "copy": {
        const text = data.text || document.getElementById(data.copy).textContent;
        copy(text).then(() => say("Copied: " + text, true), (error) => say(error.message, false));
        break;
      }
    }
  });

  // A journal row opens its entry wherever it is clicked, not only on its number.
  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-sequence]");
    if (row && !event.target.closest("button")) row.querySelector("button").click();
  });

  // -- forms -------------------------------------------------------------------------------------
  document.getElementById("clock-set").addEventListener("submit", (event) => {
    event.preventDefault();
    const now = event.target.elements.now.value.trim();
    act(() => api("POST", CLOCK + "/set", { now }), (r) => "Clock set to " + r.now);
  });

  document.getElementById("rule-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const form = event.target.elements;
    const chosen = event.target.querySelector("input[name=template]:checked");
    const rule = JSON.parse(chosen.dataset.rule);
    if (chosen.value === "fail") rule.stage = form.stage.value;
    if (chosen.value === "poll503") rule.count = Number(form.count.value);
    if (chosen.value === "latency") {
      rule.latencyMs = Number(form.latencyMs.value);
      if (form.operationId.value) rule.match.operationId = form.operationId.value;
    }
    if (form.projectId.value) rule.match.projectId = form.projectId.value;
    act(() => api("POST", "/_mock/rules", rule), (r) => "Rule " + r.ruleId + " armed");
  });

  // Filters apply as soon as they change (the Filter button is there without script too).
  document.getElementById("filters")
    .addEventListener("change", (event) => event.currentTarget.submit());

  pause.addEventListener("change", () => { if (!pause.checked) refresh(); schedule(); });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden) refresh();
    schedule();
  });
  schedule();
})();

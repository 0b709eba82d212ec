// evcharge driver dashboard: sign in, request a supply, follow it live, see the ticket and
// past sessions. Every action goes through the driver process's JSON API; live news comes
// over /ws (a snapshot first, then each step with the supply as it stands after it).
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  const UNDER_WAY = ["requesting", "reserved", "authorised", "charging", "interrupted"];
  const OUTCOMES = {
    completed: "completed (unplugged)",
    stopped_by_driver: "stopped by the driver",
    stopped_by_operator: "stopped by the operator",
    expired: "expired (never plugged in)",
    engine_failure: "ended by an engine failure",
    monitor_lost: "ended: the CP's monitor was lost",
    refused: "refused by the CP",
  };
  const outcomeText = (outcome) => OUTCOMES[outcome] || outcome || "—";

  let socket = null;
  let signedIn = false;
  let underWay = false;
  let refreshTimer = null;

  /** Calls the API; a 401 means the session ended. Clears the banner on success. */
  async function call(method, url, body) {
    try {
      const data = await Live.api(method, url, body);
      Live.banner(null);
      return data;
    } catch (e) {
      if (e.status === 401 && signedIn) {
        signedOut("your session has ended: sign in again");
      }
      throw e;
    }
  }

  function showLogin(message) {
    $("login").hidden = false;
    $("dashboard").hidden = true;
    $("logout").hidden = true;
    $("login-error").textContent = message || "";
    $("password").value = "";
    $("password").focus();
  }

  function signedOut(message) {
    signedIn = false;
    if (socket) { socket.close(); socket = null; }
    if (refreshTimer) { clearInterval(refreshTimer); refreshTimer = null; }
    Live.showLink(false, "offline");
    showLogin(message);
  }

  function showDashboard(note) {
    signedIn = true;
    $("login").hidden = true;
    $("dashboard").hidden = false;
    $("logout").hidden = false;
    $("login-error").textContent = "";
    const noteBox = $("login-note");
    noteBox.textContent = note || "";
    noteBox.classList.toggle("show", !!note);
    if (note) setTimeout(() => noteBox.classList.remove("show"), 10000);
    socket = Live.connect("/ws", onNews, onLink);
    loadAvailable();
    loadHistory();
    call("GET", "/api/state").then(renderSupply).catch(() => {});
    refreshTimer = setInterval(loadAvailable, 15000);
  }

  function onLink(up) {
    Live.showLink(up);
    if (!up && signedIn) {
      // The link may have dropped because the session ended.
      Live.api("GET", "/api/me").catch((e) => {
        if (e.status === 401) signedOut("your session has ended: sign in again");
      });
    }
  }

  function onNews(message) {
    if (message.supply) renderSupply(message.supply);
    switch (message.type) {
      case "snapshot":
        if (Array.isArray(message.available)) renderAvailable(message.available);
        break;
      case "available":
        renderAvailable(message.cps || []);
        break;
      case "ticket":
        loadHistory();
        loadAvailable();
        break;
      case "denied":
      case "gave_up":
        loadAvailable();
        break;
      default:
        break;
    }
  }

  async function loadAvailable() {
    try {
      const answer = await call("GET", "/api/available");
      renderAvailable(answer.cps || []);
    } catch (e) {
      if (e.status !== 401) Live.banner(e.message);
    }
  }

  async function loadHistory() {
    try {
      renderHistory(await call("GET", "/api/history"));
    } catch (e) {
      if (e.status !== 401) Live.banner(e.message);
    }
  }

  function renderAvailable(cps) {
    const box = $("available");
    box.replaceChildren();
    if (!cps.length) {
      box.append(Live.el("div", { class: "empty" }, "no charging point is available now"));
    }
    for (const cp of cps) {
      box.append(Live.el("div", { class: "tile state-available", dataset: { cp: cp.cp_id } },
        Live.el("div", { class: "id" }, cp.cp_id),
        Live.el("div", { class: "where" }, cp.location),
        Live.el("div", { class: "live" }, `${cp.price_eur_kwh} €/kWh`),
        Live.el("div", { class: "buttons" },
          Live.el("button", {
            type: "button", class: "request primary", disabled: underWay,
            onclick: () => request(cp.cp_id),
          }, "Request"))));
    }
  }

  function renderSupply(supply) {
    underWay = UNDER_WAY.includes(supply.state);
    $("supply-state").textContent = supply.state;
    $("supply").dataset.state = supply.state;
    $("supply-cp").textContent = supply.cp_id || (supply.state === "requesting" ? "any" : "—");
    $("supply-kwh").textContent = (supply.kwh || 0).toFixed(3);
    $("supply-eur").textContent = (supply.eur || 0).toFixed(2);
    const where = supply.location ? `${supply.location}, ${supply.price_eur_kwh} €/kWh` : "";
    $("supply-detail").textContent = [where, supply.detail].filter(Boolean).join(" · ");
    $("stop").disabled = !underWay;
    $("request-any").disabled = underWay;
    for (const button of document.querySelectorAll("#available button.request")) {
      button.disabled = underWay;
    }
    renderTicket(supply.ticket);
  }

  function renderTicket(ticket) {
    const box = $("ticket");
    $("ticket-empty").hidden = !!ticket;
    box.hidden = !ticket;
    if (!ticket) return;
    box.replaceChildren(
      Live.el("div", { class: "big" }, Live.eur(ticket.eur)),
      Live.el("div", {}, `${ticket.cp_id} · ${Live.kwh(ticket.kwh)} × ${ticket.price_eur_kwh} €/kWh`),
      Live.el("div", {}, outcomeText(ticket.outcome)),
      Live.el("div", { class: "muted" },
        `${ticket.started_at ? Live.dateTime(ticket.started_at) : "never plugged in"} → ${Live.dateTime(ticket.ended_at)}`));
  }

  function renderHistory(answer) {
    const body = $("history");
    const sessions = answer.sessions || [];
    body.replaceChildren(...sessions.map((s) => Live.el("tr", { dataset: { session: s.session_id } },
      Live.el("td", {}, Live.dateTime(s.started_at)),
      Live.el("td", {}, Live.dateTime(s.ended_at)),
      Live.el("td", {}, s.cp_id),
      Live.el("td", {}, (s.kwh || 0).toFixed(3)),
      Live.el("td", {}, (s.eur || 0).toFixed(2)),
      Live.el("td", {}, outcomeText(s.outcome)))));
    $("history-empty").hidden = sessions.length > 0;
    $("history-kwh").textContent = (answer.total_kwh || 0).toFixed(3);
    $("history-eur").textContent = (answer.total_eur || 0).toFixed(2);
  }

  async function request(cpId) {
    try {
      await call("POST", "/api/request", cpId ? { cp_id: cpId } : {});
    } catch (e) {
      if (e.status !== 401) Live.banner(e.message);
    }
  }

  $("request-any").addEventListener("click", () => request(null));

  $("stop").addEventListener("click", async () => {
    try {
      await call("POST", "/api/stop");
    } catch (e) {
      if (e.status !== 401) Live.banner(e.message);
    }
  });

  $("refresh").addEventListener("click", loadAvailable);

  $("logout").addEventListener("click", async () => {
    try { await Live.api("POST", "/api/logout"); } catch (e) { /* signed out either way */ }
    signedOut("");
  });

  $("login-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const password = $("password").value;
    const button = event.target.querySelector("button[type=submit]");
    button.disabled = true;
    $("login-error").textContent = "";
    try {
      const answer = await Live.api("POST", "/api/login", { password });
      Live.banner(null);
      $("password").value = "";
      showDashboard(answer.first_time ? "password set: use it to sign in from now on" : "");
    } catch (e) {
      $("login-error").textContent = e.message;
      if (e.status !== 401) Live.banner(e.message);
    } finally {
      button.disabled = false;
    }
  });

  // Until the driver has joined the network, say why signing in cannot work yet.
  async function waitUntilReady() {
    const button = $("login-form").querySelector("button[type=submit]");
    try {
      await Live.api("GET", "/api/ready");
      button.disabled = false;
      if (!signedIn) Live.banner(null);
    } catch (e) {
      button.disabled = true;
      Live.banner(e.message);
      setTimeout(waitUntilReady, 2000);
    }
  }
  waitUntilReady();

  // Already signed in (a reload)? Otherwise the sign-in form.
  Live.showLink(false, "offline");
  Live.api("GET", "/api/me")
    .then(() => showDashboard(""))
    .catch((e) => {
      if (e.status !== 401) Live.banner(e.message);
      showLogin("");
    });
})();

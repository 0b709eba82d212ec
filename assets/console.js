// The admin console: logs the operator in, then follows the network live over /ws.
"use strict";

const $ = (id) => document.getElementById(id);
const el = Live.el;

const STATE_LABEL = {
  available: "available",
  reserved: "reserved",
  charging: "charging",
  stopped: "Out of Order",
  broken: "broken",
  disconnected: "disconnected",
  starting: "starting",
};
const MAX_ROWS = 300;

const view = {
  cps: new Map(),        // id → CpView
  tiles: new Map(),      // id → tile element
  sessions: new Map(),   // id → session (closed ones)
  records: [],           // Kafka records, oldest first
  paused: false,
  socket: null,
  password: null,        // the one-time password, kept only until it is changed
};

// ---- who is here -----------------------------------------------------------------------

function show(which) {
  for (const id of ["login-view", "password-view", "console-view"]) {
    $(id).hidden = id !== which;
  }
  $("logout").hidden = which === "login-view";
}

async function boot() {
  try {
    const me = await Live.api("GET", "/api/me");
    enter(me);
  } catch (e) {
    if (e.status === 401) {
      show("login-view");
      Live.showLink(false, "logged out");
    } else {
      Live.banner(`cannot reach the central: ${e.message}`);
      setTimeout(boot, 2000);
    }
  }
}

function enter(me) {
  $("who").textContent = me.name;
  Live.banner(null);
  if (me.must_change_password) {
    show("password-view");
    $("new-password").focus();
    return;
  }
  show("console-view");
  start();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  try {
    const me = await Live.api("POST", "/api/login", { name, password });
    view.password = password;
    $("login-password").value = "";
    enter(me);
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});

$("password-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const fresh = $("new-password").value;
  if (fresh !== $("new-password-again").value) {
    $("password-error").textContent = "the two passwords differ";
    return;
  }
  try {
    await Live.api("POST", "/api/password", { current: view.password || "", new: fresh });
    view.password = null;
    boot();
  } catch (e) {
    $("password-error").textContent = e.message;
  }
});

$("logout").addEventListener("click", async () => {
  try { await Live.api("POST", "/api/logout"); } catch (e) { /* gone anyway */ }
  if (view.socket) { view.socket.close(); view.socket = null; }
  location.reload();
});

// ---- live ------------------------------------------------------------------------------

function start() {
  if (view.socket) return;
  loadSessions();
  loadCentrals();
  view.socket = Live.connect("/ws", onMessage, async (up) => {
    Live.showLink(up);
    if (up) {
      Live.banner(null);
      return;
    }
    try {
      await Live.api("GET", "/api/me");
      Live.banner("live updates lost: reconnecting…");
    } catch (e) {
      if (e.status === 401) {
        view.socket.close();
        view.socket = null;
        show("login-view");
        Live.banner("your session ended: log in again");
      } else {
        Live.banner("cannot reach the central: it may be restarting, trying again…");
      }
    }
  });
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot":
      view.cps.clear();
      message.cps.forEach((cp) => view.cps.set(cp.id, cp));
      renderTiles(true);
      $("feed").replaceChildren();
      message.feed.forEach(addFeed);
      renderRequests(message.requests);
      view.records = [];
      addRecords(message.kafka);
      loadSessions();
      break;
    case "cps":
      message.cps.forEach((cp) => view.cps.set(cp.id, cp));
      renderTiles(false);
      break;
    case "feed":
      message.entries.forEach(addFeed);
      break;
    case "requests":
      renderRequests(message.requests);
      break;
    case "session":
      addSession(message.session);
      renderSessions();
      break;
    case "kafka":
      addRecords(message.records);
      break;
  }
}

// ---- charging points -------------------------------------------------------------------

function operate(path, button) {
  return async () => {
    button.disabled = true;
    try {
      await Live.api("POST", path);
      Live.banner(null);
    } catch (e) {
      Live.banner(e.message);
    } finally {
      button.disabled = false;
    }
  };
}

function makeTile(id) {
  const stop = el("button", { class: "small warn stop" }, "Stop");
  const resume = el("button", { class: "small resume" }, "Resume");
  const crashEngine = el("button", { class: "small danger crash-engine", title: "kill the CP's engine process" }, "Crash engine");
  const crashMonitor = el("button", { class: "small danger crash-monitor", title: "kill the CP's monitor process" }, "Crash monitor");
  const crashActor = el("button", { class: "small danger crash-actor", title: "crash this CP's actor in the central; it restarts" }, "Crash actor");
  const path = `/api/cps/${encodeURIComponent(id)}`;
  stop.addEventListener("click", operate(`${path}/stop`, stop));
  resume.addEventListener("click", operate(`${path}/resume`, resume));
  crashEngine.addEventListener("click", operate(`/api/crash/cps/${encodeURIComponent(id)}/engine`, crashEngine));
  crashMonitor.addEventListener("click", operate(`/api/crash/cps/${encodeURIComponent(id)}/monitor`, crashMonitor));
  crashActor.addEventListener("click", operate(`/api/crash/cps/${encodeURIComponent(id)}`, crashActor));
  const tile = el("div", { class: "tile", dataset: { cp: id } },
    el("div", { class: "id" }, el("span", {}, id), el("span", { class: "state" })),
    el("div", { class: "where" }),
    el("div", { class: "live" }),
    el("div", { class: "fault" }),
    el("div", { class: "note" }),
    el("div", { class: "connectors" }),
    el("div", { class: "owner" }),
    el("div", { class: "buttons" }, stop, resume, crashEngine, crashMonitor, crashActor));
  return tile;
}

function updateTile(tile, cp) {
  tile.className = `tile state-${cp.state}`;
  tile.dataset.state = cp.state;
  tile.querySelector(".state").textContent = STATE_LABEL[cp.state] || cp.state;
  tile.querySelector(".where").textContent =
    `${cp.location} · ${cp.price_eur_kwh.toFixed(2)} €/kWh`;
  const live = tile.querySelector(".live");
  if (cp.state === "charging") {
    live.replaceChildren(
      el("span", { class: "driver" }, cp.driver_id), " · ",
      el("span", { class: "kwh" }, Live.kwh(cp.kwh)), " · ",
      el("span", { class: "eur" }, Live.eur(cp.eur)));
  } else if (cp.state === "reserved") {
    live.replaceChildren("reserved for ", el("span", { class: "driver" }, cp.driver_id));
  } else if (cp.driver_id) {
    live.replaceChildren("ending the supply of ", el("span", { class: "driver" }, cp.driver_id));
  } else {
    live.replaceChildren();
  }
  // A starting CP's reason is a note, not a fault.
  tile.querySelector(".fault").textContent = cp.state === "broken" ? (cp.fault || "engine KO") : "";
  tile.querySelector(".note").textContent = cp.state === "starting" ? (cp.fault || "") : "";
  tile.querySelector(".owner").textContent = cp.owner ? `run by ${cp.owner}` : "run by no central yet";
  // An OCPP charge point's connectors, each with its own status.
  tile.querySelector(".connectors").replaceChildren(...(cp.connectors || []).map((c) =>
    el("span", {
      class: `connector connector-${c.status.toLowerCase()}`,
      title: c.detail || c.status,
      dataset: { connector: String(c.connector_id) },
    }, `${c.connector_id} ${c.status}`)));
  const stopped = cp.state === "stopped";
  tile.querySelector(".stop").hidden = stopped;
  tile.querySelector(".resume").hidden = !stopped;
}

function renderTiles(fresh) {
  if (fresh) {
    view.tiles.clear();
    $("tiles").replaceChildren();
  }
  const ids = [...view.cps.keys()].sort();
  for (const id of ids) {
    let tile = view.tiles.get(id);
    if (!tile) {
      tile = makeTile(id);
      view.tiles.set(id, tile);
      // Keep the tiles in id order.
      const next = ids.slice(ids.indexOf(id) + 1).map((n) => view.tiles.get(n)).find(Boolean);
      $("tiles").insertBefore(tile, next || null);
    }
    updateTile(tile, view.cps.get(id));
  }
  const counts = {};
  for (const cp of view.cps.values()) counts[cp.state] = (counts[cp.state] || 0) + 1;
  $("cp-count").textContent = ids.length
    ? `${ids.length} · ` + Object.entries(counts).map(([s, n]) => `${n} ${STATE_LABEL[s]}`).join(", ")
    : "";
  $("tiles-empty").hidden = ids.length > 0;
}

// ---- the central instances ---------------------------------------------------------------

// Each instance says how it is every 2 s; the table follows at that pace.
async function loadCentrals() {
  try {
    renderCentrals(await Live.api("GET", "/api/centrals"));
  } catch (e) {
    if (e.status === 401) return; // logged out: boot() shows the login again
  }
  setTimeout(loadCentrals, 2000);
}

function renderCentrals(centrals) {
  const alive = centrals.filter((c) => c.alive).length;
  $("central-count").textContent = `${alive} of ${centrals.length} answering`;
  $("centrals").replaceChildren(...centrals.map((c) => el("tr", { class: c.alive ? "" : "silent", dataset: { central: c.instance } },
    el("td", {}, c.instance + (c.this ? " (this one)" : "")),
    el("td", { class: "health" }, c.alive ? "answering" : `silent since ${Live.time(c.at)}`),
    el("td", { class: "cps" }, String(c.cps)),
    el("td", {}, c.partitions.join(", ") || "none"),
    el("td", {}, Live.time(c.started_at)),
    el("td", {}, c.this ? "" : el("a", { href: c.console }, c.console)))));
}

$("stop-all").addEventListener("click", operate("/api/cps/stop", $("stop-all")));
$("resume-all").addEventListener("click", operate("/api/cps/resume", $("resume-all")));

// ---- feed and requests -----------------------------------------------------------------

function addFeed(entry) {
  const feed = $("feed");
  feed.prepend(el("li", { class: entry.kind },
    el("span", { class: "when" }, Live.time(entry.at)),
    el("span", {}, entry.text)));
  while (feed.children.length > 200) feed.lastChild.remove();
  $("feed-empty").hidden = feed.children.length > 0;
}

function renderRequests(requests) {
  const rows = requests.map((r) => {
    const status = {
      reserved: () => el("span", { class: "pill ok" }, `reserved at ${r.cp_id}`),
      charging: () => el("span", { class: "pill ok" }, `charging at ${r.cp_id}: ${r.detail || ""}`),
      ended: () => el("span", { class: "pill" }, `ended at ${r.cp_id}: ${r.detail || ""}`),
      denied: () => el("span", { class: "pill ko", title: r.detail || "" }, `denied: ${r.detail || ""}`),
    }[r.status] || (() => el("span", { class: "pill warn" }, "waiting"));
    return el("tr", { dataset: { request: r.request_id } },
      el("td", {}, r.driver_id), el("td", {}, r.wanted || "any CP"),
      el("td", { class: "status", dataset: { status: r.status } }, status()));
  });
  $("requests").replaceChildren(...rows);
  $("requests-empty").hidden = rows.length > 0;
}

// ---- sessions --------------------------------------------------------------------------

async function loadSessions() {
  try {
    const sessions = await Live.api("GET", "/api/sessions");
    view.sessions.clear();
    sessions.forEach(addSession);
    renderSessions();
  } catch (e) {
    Live.banner(`cannot load the session history: ${e.message}`);
  }
}

function addSession(session) {
  if (session.outcome) view.sessions.set(session.id, session);
}

function renderSessions() {
  const closed = [...view.sessions.values()]
    .sort((a, b) => (b.ended_at || "").localeCompare(a.ended_at || ""));
  let kwh = 0;
  let eur = 0;
  for (const s of closed) { kwh += s.kwh; eur += s.eur; }
  $("total-sessions").textContent = String(closed.length);
  $("total-kwh").textContent = Live.kwh(kwh);
  $("total-eur").textContent = Live.eur(eur);
  const rows = closed.slice(0, 100).map((s) => el("tr", { dataset: { session: s.id } },
    el("td", {}, Live.dateTime(s.ended_at)), el("td", {}, s.cp_id), el("td", {}, s.driver_id),
    el("td", {}, s.kwh.toFixed(3)), el("td", {}, s.eur.toFixed(2)),
    el("td", {}, s.outcome.replaceAll("_", " "))));
  $("sessions").replaceChildren(...rows);
  $("sessions-empty").hidden = rows.length > 0;
}

// ---- Kafka topics ----------------------------------------------------------------------

// Engines and drivers say hello every few seconds; hidden unless asked for.
const HEARTBEAT = /"type":"(engine_hello|hello)"/;

function recordShown(r) {
  const topic = $("topic-filter").value;
  const key = $("key-filter").value.trim().toLowerCase();
  const heartbeats = $("show-heartbeats").checked;
  return (!topic || r.topic === topic)
    && (!key || (r.key || "").toLowerCase().includes(key))
    && (heartbeats || !HEARTBEAT.test(r.value));
}

function recordRow(r) {
  return el("tr", { dataset: { topic: r.topic, key: r.key || "" } },
    el("td", {}, Live.time(r.at)),
    el("td", {}, r.topic),
    el("td", {}, r.key || "—"),
    el("td", {}, el("pre", { class: "msg" }, r.value)));
}

function addRecords(records) {
  const select = $("topic-filter");
  for (const r of records) {
    view.records.push(r);
    if (![...select.options].some((o) => o.value === r.topic)) {
      select.append(el("option", { value: r.topic }, r.topic));
    }
  }
  if (view.records.length > MAX_ROWS) view.records.splice(0, view.records.length - MAX_ROWS);
  if (!view.paused) renderRecords();
}

function renderRecords() {
  const rows = view.records.filter(recordShown).slice(-MAX_ROWS).reverse().map(recordRow);
  $("kafka").replaceChildren(...rows);
  $("kafka-empty").hidden = rows.length > 0;
}

$("topic-filter").addEventListener("change", renderRecords);
$("show-heartbeats").addEventListener("change", renderRecords);
$("key-filter").addEventListener("input", renderRecords);
$("key-filter").addEventListener("change", renderRecords);
$("pause").addEventListener("click", () => {
  view.paused = !view.paused;
  $("pause").textContent = view.paused ? "Resume" : "Pause";
  if (!view.paused) renderRecords();
});

// ---- tokens ----------------------------------------------------------------------------

$("new-token").addEventListener("click", async () => {
  try {
    const issued = await Live.api("POST", "/api/tokens", { label: "from the console" });
    $("token").textContent = `${issued.token}\n(shown once: keep it now)`;
  } catch (e) {
    Live.banner(e.message);
  }
});

// ---- registering charging points -------------------------------------------------------

function termsForm() {
  const id = $("register-id").value.trim();
  const location = $("register-location").value.trim();
  const price = $("register-price").value.trim();
  const terms = {};
  if (location) terms.location = location;
  if (price) terms.price_eur_kwh = Number(price);
  return { id, terms };
}

async function registry(action) {
  const { id, terms } = termsForm();
  try {
    if (action === "register") {
      const made = await Live.api("POST", "/api/cps", { id, ...terms });
      $("cp-secret").textContent =
        `${made.id} registered; its secret:\n${made.secret}\n(shown once: put it in the CP's secret file now)`;
    } else if (action === "terms") {
      const changed = await Live.api("PATCH", `/api/cps/${encodeURIComponent(id)}`, terms);
      $("cp-secret").textContent =
        `${changed.id}: ${changed.location}, ${Live.eur(changed.price_eur_kwh)} / kWh`;
    } else {
      const issued = await Live.api("POST", `/api/cps/${encodeURIComponent(id)}/secret`);
      $("cp-secret").textContent =
        `${issued.id}: new secret\n${issued.secret}\n(shown once; the old one no longer works)`;
    }
  } catch (e) {
    $("cp-secret").textContent = e.message;
  }
}

$("register-cp").addEventListener("submit", (event) => {
  event.preventDefault();
  registry("register");
});
$("change-terms").addEventListener("click", () => registry("terms"));
$("new-secret").addEventListener("click", () => registry("secret"));

boot();

// evcharge monitor page: one CP's health checks, faults and link with the central, live.
// Everything arrives over the WebSocket: a snapshot on connect, then one message per check.
"use strict";

const MAX_CHECKS = 60;
const STATES = ["available", "reserved", "charging", "stopped", "broken", "disconnected", "starting"];
const $ = (id) => document.getElementById(id);

function ms(value) {
  return value === null || value === undefined ? "—" : `${value.toFixed(2)} ms`;
}

function showHeader(status) {
  $("cp-id").textContent = status.cp_id;
  $("cp-location").textContent = status.location || "—";
  $("cp-price").textContent =
    status.price_eur_kwh == null ? "—" : `${Live.eur(status.price_eur_kwh)} / kWh`;
  document.title = `evcharge · monitor · ${status.cp_id}`;
}

function showCentral(central) {
  const state = central.link === "reported" && STATES.includes(central.cp_state)
    ? central.cp_state : "unknown";
  $("cp-state").textContent = state;
  $("state-block").className = `tile monitor-state state-${state}`;
  const notes = {
    reported: "as the central shows it now",
    refused: "the central refuses this CP",
    unreachable: "the central cannot be reached",
    starting: "waiting for the central's first answer",
  };
  $("cp-state-note").textContent = state === "starting"
    ? "the central waits to hear its engine on the bus"
    : notes[central.link] || "";

  $("central-link").textContent = central.link;
  $("central-dot").className = "dot " + (central.link === "reported" ? "ok"
    : central.link === "starting" ? "" : "ko");
  $("central-detail").textContent = central.detail || "";

  if (central.link === "unreachable") {
    Live.banner(`cannot reach the central (${central.detail || "no answer"})`);
  } else if (central.link === "refused") {
    Live.banner(`the central refuses this CP (${central.detail || "no reason given"})`);
  } else {
    Live.banner(null);
  }
}

function showEngine(engine) {
  const result = engine.result || "starting";
  $("engine-health").textContent = result;
  $("engine-dot").className = "dot " + (result === "ok" ? "ok" : result === "starting" ? "" : "ko");
  $("engine-detail").textContent = engine.detail || "";
}

function checkRow(check) {
  const pill = check.result === "ok" ? "ok" : "ko";
  return Live.el("tr", {},
    Live.el("td", {}, Live.time(check.at)),
    Live.el("td", {}, Live.el("span", { class: `pill ${pill}` }, check.result)),
    Live.el("td", {}, ms(check.engine_ms)),
    Live.el("td", {}, check.central_ms === null ? check.link : ms(check.central_ms)),
    Live.el("td", {}, check.cp_state || "—"),
    Live.el("td", { class: "muted" }, check.detail || ""));
}

function showChecks(checks) {
  $("checks").replaceChildren(...checks.slice(0, MAX_CHECKS).map(checkRow));
  $("checks-empty").hidden = checks.length > 0;
}

function addCheck(check) {
  const body = $("checks");
  body.prepend(checkRow(check));
  while (body.children.length > MAX_CHECKS) body.lastElementChild.remove();
  $("checks-empty").hidden = true;
}

function showFaults(faults) {
  $("faults").replaceChildren(...faults.map((fault) => Live.el("li", {},
    Live.el("span", { class: "when" }, Live.time(fault.began_at)),
    Live.el("span", { class: "fault monitor-grow" }, fault.detail || "fault"),
    fault.cleared_at
      ? Live.el("span", { class: "pill ok" }, `cleared ${Live.time(fault.cleared_at)}`)
      : Live.el("span", { class: "pill ko" }, "ongoing"))));
  $("faults-empty").hidden = faults.length > 0;
}

function onMessage(message) {
  switch (message.type) {
    case "snapshot":
      showHeader(message);
      showCentral(message.central);
      showEngine(message.engine);
      showChecks(message.checks || []);
      showFaults(message.faults || []);
      break;
    case "check":
      addCheck(message.check);
      showCentral(message.central);
      showEngine(message.engine);
      break;
    case "faults":
      showFaults(message.faults || []);
      break;
  }
}

Live.connect("/ws", onMessage, (up) => Live.showLink(up));

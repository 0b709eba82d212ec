// evcharge: what every page shares — JSON calls with readable errors, live updates over a
// WebSocket that reconnects by itself, and small formatting helpers.
"use strict";

const Live = {
  /** Calls the page's own JSON API; throws an Error carrying the server's explanation. */
  async api(method, url, body) {
    const init = { method, headers: { "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, init);
    } catch (e) {
      throw new Error("cannot reach the server: is it running?");
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    if (!response.ok) {
      const error = new Error((data && data.error) || `${response.status} ${response.statusText}`);
      error.status = response.status;
      throw error;
    }
    return data;
  },

  /**
   * Opens a WebSocket on `path` and keeps it open: on a close it tries again with a growing
   * pause (up to 5 s). `onMessage` gets each parsed JSON message; `onStatus(true|false)` hears
   * when the link comes and goes. Returns an object whose `close()` stops it for good.
   */
  connect(path, onMessage, onStatus) {
    let socket = null;
    let delay = 250;
    let stopped = false;
    const open = () => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      socket = new WebSocket(`${scheme}//${location.host}${path}`);
      socket.onopen = () => { delay = 250; onStatus && onStatus(true); };
      socket.onmessage = (event) => {
        let message;
        try { message = JSON.parse(event.data); } catch (e) { return; }
        onMessage(message);
      };
      socket.onclose = () => {
        onStatus && onStatus(false);
        if (stopped) return;
        setTimeout(open, delay);
        delay = Math.min(delay * 2, 5000);
      };
      socket.onerror = () => socket.close();
    };
    open();
    return { close() { stopped = true; socket && socket.close(); } };
  },

  /** Shows the link state in the top bar's badge (an element with id `conn`). */
  showLink(up, downText) {
    const badge = document.getElementById("conn");
    if (!badge) return;
    badge.className = "conn " + (up ? "live" : "down");
    badge.textContent = up ? "live" : (downText || "reconnecting…");
  },

  /** Shows (or hides, with null) the page's error banner (an element with id `banner`). */
  banner(text) {
    const banner = document.getElementById("banner");
    if (!banner) return;
    banner.textContent = text || "";
    banner.classList.toggle("show", !!text);
  },

  /** Builds an element: el("td", {class: "x"}, "text", otherElement…). */
  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  },

  kwh(value) { return `${(value || 0).toFixed(3)} kWh`; },
  eur(value) { return `${(value || 0).toFixed(2)} €`; },
  time(iso) { return iso ? new Date(iso).toLocaleTimeString() : "—"; },
  dateTime(iso) { return iso ? new Date(iso).toLocaleString() : "—"; },
};

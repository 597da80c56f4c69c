// Palisade security console. Talks only to this admin listener. The token lives in
// sessionStorage (this tab only) and travels in the Authorization header, never in a cookie,
// so a page on another site cannot make the browser use it. Everything shown is written with
// textContent: values from requests (paths, rule ids) are never parsed as HTML.
"use strict";

const KEY = "palisade-admin-token";
const POLL_MS = 1000;
const HISTORY = 120;
const FEED_ROWS = 50;

let token = sessionStorage.getItem(KEY);
let timer = null;
let streamAbort = null;
let previous = null;
const rates = [];

const $ = (id) => document.getElementById(id);

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}

async function api(method, path, body) {
  const init = { method, headers: { Authorization: "Bearer " + token }, cache: "no-store" };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (res.status === 401) {
    signOut("The token was refused. Sign in again.");
    throw new Error("unauthorized");
  }
  return { status: res.status, data };
}

function showSignedIn(on) {
  $("signin-panel").hidden = on;
  $("console").hidden = !on;
  $("whoami").hidden = !on;
}

async function signIn(candidate) {
  token = candidate;
  let res;
  try {
    res = await fetch("/api/stats", { headers: { Authorization: "Bearer " + candidate }, cache: "no-store" });
  } catch (e) {
    return fail("The admin listener did not answer: " + e.message);
  }
  if (res.status === 401) return fail("Wrong token: the admin listener refused it.");
  if (res.status === 403) return fail("This listener has no admin token configured (admin.token_file).");
  if (!res.ok) return fail("Sign-in failed with status " + res.status + ".");
  sessionStorage.setItem(KEY, candidate);
  $("signin-error").hidden = true;
  $("token").value = "";
  showSignedIn(true);
  start();
}

function fail(message) {
  token = null;
  sessionStorage.removeItem(KEY);
  const e = $("signin-error");
  e.textContent = message;
  e.hidden = false;
  $("token").value = "";
  showSignedIn(false);
}

function signOut(message) {
  stop();
  token = null;
  sessionStorage.removeItem(KEY);
  showSignedIn(false);
  if (message) {
    $("signin-error").textContent = message;
    $("signin-error").hidden = false;
  }
}

function start() {
  stop();
  refresh();
  timer = setInterval(refresh, POLL_MS);
  stream();
}

function stop() {
  if (timer) clearInterval(timer);
  timer = null;
  if (streamAbort) streamAbort.abort();
  streamAbort = null;
}

async function refresh() {
  if (!token) return;
  try {
    const [stats, offenders, bans] = await Promise.all([
      api("GET", "/api/stats"),
      api("GET", "/api/offenders?top=20&window=5m"),
      api("GET", "/api/bans"),
    ]);
    if (stats.data) showStats(stats.data);
    if (offenders.data) showOffenders(offenders.data.offenders);
    if (bans.data) showBans(bans.data.bans);
  } catch (_) { /* signed out or listener gone; the next tick tries again */ }
}

function fmt(n) {
  return n >= 100 ? Math.round(n).toString() : n.toFixed(1);
}

function showStats(s) {
  if (previous && s.time_ms > previous.time_ms) {
    const dt = (s.time_ms - previous.time_ms) / 1000;
    rates.push({ requests: Math.max(0, (s.requests - previous.requests) / dt),
                 refused: Math.max(0, (s.non_allow - previous.non_allow) / dt) });
    while (rates.length > HISTORY) rates.shift();
    const last = rates[rates.length - 1];
    $("rate-requests").textContent = fmt(last.requests);
    $("rate-refused").textContent = fmt(last.refused);
    draw();
  }
  previous = s;
  $("policy-hash").textContent = s.policy.hash;
  $("policy-generation").textContent = s.policy.generation;
  $("policy-badge").textContent = "policy " + s.policy.hash + " · gen " + s.policy.generation;
  const lr = s.last_reload;
  const errs = $("reload-errors");
  errs.replaceChildren();
  if (lr) {
    const when = new Date(lr.at_ms).toLocaleTimeString();
    $("last-reload").replaceChildren(el("span", lr.ok ? "ok" : "refused", lr.ok ? "ok" : "bad"),
                                     el("span", " at " + when + " (generation " + lr.generation + ")"));
    for (const e of lr.errors) {
      errs.append(el("li", e.file + ":" + e.line + (e.field ? " field `" + e.field + "`" : "") + ": " + e.message));
    }
  }
  const t = s.telemetry;
  const healthy = t.dropped === 0 && t.spilled === 0;
  $("telemetry-health").replaceChildren(el("span", t.emitted === 0 ? "idle or off" : healthy ? "healthy" : "degraded",
                                           t.emitted === 0 ? "muted" : healthy ? "ok" : "warn"));
  $("telemetry-counts").textContent = t.sent + " / " + t.dropped;
  $("telemetry-spilled").textContent = String(t.spilled);
  const f = s.fleet;
  if (!f.enabled) {
    $("fleet-health").replaceChildren(el("span", "off (this instance alone)", "muted"));
  } else {
    const ago = f.last_sync_ms ? Math.round((s.time_ms - f.last_sync_ms) / 1000) + " s ago" : "never";
    $("fleet-health").replaceChildren(el("span", f.connected ? "connected" : "bus away", f.connected ? "ok" : "warn"),
      el("span", " · synced " + ago + (f.lag_ms == null ? "" : " · lag " + f.lag_ms + " ms") + " · "
        + f.instances + " instance(s) seen · " + f.fleet_bans + " fleet ban(s)" + (f.dropped ? " · " + f.dropped + " update(s) dropped" : "")));
  }
  $("feed-health").textContent = s.stream.clients + " client(s), " + s.stream.dropped + " dropped for lag, "
    + s.stream.board_lost + " board events lost";
  $("active-bans").textContent = String(s.active_bans);
}

function draw() {
  const c = $("rates");
  const ratio = window.devicePixelRatio || 1;
  const w = c.clientWidth, h = c.clientHeight;
  if (c.width !== w * ratio) { c.width = w * ratio; c.height = h * ratio; }
  const g = c.getContext("2d");
  g.setTransform(ratio, 0, 0, ratio, 0, 0);
  g.clearRect(0, 0, w, h);
  const max = Math.max(1, ...rates.map((r) => Math.max(r.requests, r.refused)));
  const top = niceCeil(max);
  g.strokeStyle = "#2a3440"; g.fillStyle = "#8593a3"; g.font = "11px system-ui"; g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = 8 + (h - 24) * i / 4;
    g.beginPath(); g.moveTo(36, y); g.lineTo(w, y); g.stroke();
    g.fillText(fmt(top * (4 - i) / 4), 0, y + 4);
  }
  const line = (key, color) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    rates.forEach((r, i) => {
      const x = 36 + (w - 40) * (i + HISTORY - rates.length) / (HISTORY - 1);
      const y = 8 + (h - 24) * (1 - r[key] / top);
      if (i === 0) g.moveTo(x, y); else g.lineTo(x, y);
    });
    g.stroke();
  };
  line("requests", "#4fa3ff");
  line("refused", "#ff6b5e");
}

function niceCeil(v) {
  const p = Math.pow(10, Math.floor(Math.log10(v)));
  for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
  return 10 * p;
}

function left(untilMs) {
  if (untilMs === null || untilMs === undefined) return "until lifted";
  const s = Math.max(0, Math.round((untilMs - Date.now()) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  return (h ? h + "h " : "") + (h || m ? m + "m " : "") + r + "s";
}

function showOffenders(list) {
  const body = $("offenders").tBodies[0];
  body.replaceChildren();
  $("offenders-empty").hidden = list.length > 0;
  for (const o of list) {
    const tr = el("tr");
    tr.dataset.actor = o.actor;
    const actor = el("td", o.actor, "actor mono");
    actor.title = o.actor;
    const p = o.penalty;
    const state = p ? el("td", p.kind + " · " + left(p.until_ms), "state-" + p.kind) : el("td", "watching", "muted");
    const action = el("td");
    const button = p && p.kind === "ban" ? el("button", "Unban", "unban") : el("button", "Ban 1h", "ban");
    button.type = "button";
    button.dataset.actor = o.actor;
    button.addEventListener("click", () => (p && p.kind === "ban") ? lift(p.id) : ban(o.actor, "1h", "banned from the console"));
    action.append(button);
    tr.append(actor, el("td", o.refusals), el("td", fmt(o.refusals_per_minute)), el("td", o.strikes),
              el("td", (o.last_rules || []).join(", "), "mono"), state, action);
    body.append(tr);
  }
}

function showBans(list) {
  const body = $("bans").tBodies[0];
  body.replaceChildren();
  $("bans-empty").hidden = list.length > 0;
  for (const b of list) {
    const tr = el("tr");
    tr.dataset.actor = b.actor;
    const action = el("td");
    const button = el("button", "Unban", "unban");
    button.type = "button";
    button.dataset.actor = b.actor;
    button.addEventListener("click", () => lift(b.id));
    action.append(button);
    const actor = el("td", b.actor, "actor mono");
    actor.title = b.actor;
    tr.append(actor, el("td", b.kind, "state-" + b.kind), el("td", b.reason), el("td", (b.rules || []).join(", "), "mono"),
              el("td", left(b.until_ms)), action);
    body.append(tr);
  }
}

async function ban(actor, duration, reason) {
  const body = { actor, duration };
  if (reason) body.reason = reason;
  const res = await api("POST", "/api/bans", body);
  const e = $("ban-error");
  if (res.status !== 201) {
    e.textContent = "Ban refused: " + (res.data && res.data.error ? res.data.error : "status " + res.status);
    e.hidden = false;
  } else {
    e.hidden = true;
  }
  refresh();
}

async function lift(id) {
  await api("DELETE", "/api/bans/" + encodeURIComponent(id));
  refresh();
}

async function reload() {
  const res = await api("POST", "/api/reload");
  if (res.status !== 200 && res.status !== 422) {
    $("last-reload").textContent = "reload failed with status " + res.status;
  }
  refresh();
}

// The decision stream, read with fetch (EventSource cannot send the Authorization header).
async function stream() {
  const mine = new AbortController();
  streamAbort = mine;
  try {
    const res = await fetch("/api/decisions/stream", {
      headers: { Authorization: "Bearer " + token }, cache: "no-store", signal: mine.signal,
    });
    if (res.status === 401) { signOut("The token was refused. Sign in again."); return; }
    const reader = res.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += decoder.decode(value, { stream: true });
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        record(buffer.slice(0, cut));
        buffer = buffer.slice(cut + 2);
      }
    }
  } catch (_) { /* aborted, or the listener went away */ }
  if (streamAbort === mine && token) setTimeout(() => { if (streamAbort === mine && token) stream(); }, 2000);
}

function record(text) {
  let event = "message", data = "";
  for (const line of text.split("\n")) {
    if (line.startsWith("event: ")) event = line.slice(7);
    else if (line.startsWith("data: ")) data += line.slice(6);
  }
  if (event !== "decision" || !data) return;
  const d = JSON.parse(data);
  const body = $("feed").tBodies[0];
  const tr = el("tr");
  tr.dataset.requestId = d.request_id;
  tr.append(el("td", new Date(d.time_ms).toLocaleTimeString()), el("td", d.decision, d.decision.startsWith("would") ? "warn" : "bad"),
            el("td", d.rule || "", "mono"), el("td", d.identity ? d.client_ip + " " + d.identity.slice(0, 20) + "…" : d.client_ip, "mono"),
            el("td", d.method + " " + d.host + d.path + " → " + d.status, "mono"), el("td", d.request_id, "mono"));
  body.prepend(tr);
  while (body.rows.length > FEED_ROWS) body.deleteRow(body.rows.length - 1);
  $("feed-empty").hidden = true;
}

document.addEventListener("DOMContentLoaded", () => {
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("token").value.trim()); });
  $("signout").addEventListener("click", () => signOut());
  $("reload").addEventListener("click", reload);
  $("ban-form").addEventListener("submit", (e) => {
    e.preventDefault();
    ban($("ban-target").value.trim(), $("ban-duration").value, $("ban-reason").value.trim());
  });
  if (token) signIn(token); else showSignedIn(false);
});

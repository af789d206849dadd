// Callscribe live-calls board: every live call from one event stream
// (/api/board/stream, read with fetch so that the token travels in a header,
// never in a URL); a click follows a call (?follow=<id> on the same stream).
"use strict";

const $ = (id) => document.getElementById(id);
const TOKEN_KEY = "callscribe-board-token";
let token = sessionStorage.getItem(TOKEN_KEY) || "";
let skew = 0;               // the gateway's clock minus ours (ms)
let sentAt = 0;             // when the gateway sent the frame in hand (its clock)
const rows = new Map();     // call id → { sum, tr }
let following = decodeURIComponent(location.hash.slice(1));
let stream = null;          // AbortController of the open stream
let followed = null;        // the followed call: { id, sum, legs: Map(name → column), alerts, lastSeq }

function headers(h) {
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

function setStatus(s) {
  $("status").textContent = s;
  document.body.dataset.status = s;
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

// rich fills e with text, redaction markers ([CARD], [SSN], [NUMBER]) as
// marker elements and the words of phrases marked.
function rich(e, text, phrases) {
  e.replaceChildren();
  for (const part of text.split(/(\[(?:CARD|SSN|NUMBER)\])/)) {
    if (!part) continue;
    if (/^\[(CARD|SSN|NUMBER)\]$/.test(part)) {
      e.append(el("span", "marker", part));
      continue;
    }
    let rest = part;
    for (const p of phrases || []) {
      const i = rest.toLowerCase().indexOf(p.toLowerCase());
      if (i < 0) continue;
      e.append(rest.slice(0, i), el("mark", "", rest.slice(i, i + p.length)));
      rest = rest.slice(i + p.length);
    }
    e.append(rest);
  }
}

function duration(since) {
  const s = Math.max(0, Math.floor((Date.now() + skew - since) / 1000));
  const hms = [Math.floor(s / 3600), Math.floor(s / 60) % 60, s % 60];
  return (hms[0] ? hms[0] + ":" : "") + hms.slice(1).map((n) => String(n).padStart(2, "0")).join(":");
}

// who says who the call is between: from/to, or the platform's ids.
function who(sum) {
  const info = sum.info || {};
  if (info.from || info.to) return (info.from || "?") + " → " + (info.to || "?");
  const ids = Object.keys(info).filter((k) => !["codec", "recording", "sip_call_id"].includes(k)).sort()
    .slice(0, 3).map((k) => k + " " + info[k]);
  if (ids.length) return ids.join(" · ");
  return sum.peer || "";
}

function stateBadge(e, state) {
  e.className = "state";
  e.dataset.state = state;
  e.textContent = state;
}

// row is the call's table row, made when new (the newest on top).
function upsert(sum) {
  let r = rows.get(sum.id);
  if (!r) {
    const tr = el("tr");
    tr.dataset.id = sum.id;
    tr.dataset.shown = String(Date.now());
    tr.dataset.sent = String(sentAt);
    for (let i = 0; i < 6; i++) tr.append(el("td"));
    tr.addEventListener("click", () => follow(sum.id));
    r = { tr, alerts: new Set() };
    rows.set(sum.id, r);
    placeRow(tr, sum.since);
  }
  r.sum = sum;
  const [state, call, legs, codec, , alerts] = r.tr.children;
  r.tr.dataset.state = sum.state;
  const badge = state.firstChild || state.appendChild(el("span"));
  stateBadge(badge, sum.state);
  call.replaceChildren(el("span", "source", sum.source || "?"), el("span", "id", sum.id), el("span", "who", who(sum)));
  if (sum.redact) call.append(el("span", "redact", "redacted"));
  legs.replaceChildren(...sum.legs.map((l) => {
    const line = el("span", "leg");
    line.dataset.leg = l.name;
    const text = el("span", "last");
    rich(text, l.last || "");
    line.append(el("b", "", l.name), text);
    return line;
  }));
  codec.textContent = (sum.info && sum.info.codec) || "";
  for (const a of sum.alerts || []) {
    if (r.alerts.has(a.seq)) continue;
    const badge = el("span", "alert new", a.phrase);
    badge.title = a.leg + ": " + a.text;
    alerts.prepend(badge);
    while (alerts.children.length > 5) alerts.lastChild.remove();
    r.alerts.add(a.seq);
  }
  tick(r);
  if (followed && followed.id === sum.id) followHead(sum);
}

// placeRow keeps the rows newest first.
function placeRow(tr, since) {
  const body = $("calls");
  for (const other of body.children) {
    const o = rows.get(other.dataset.id);
    if (o && o.sum && o.sum.since < since) {
      body.insertBefore(tr, other);
      return;
    }
  }
  body.append(tr);
}

function words(id, last) {
  const r = rows.get(id);
  if (!r) return;
  r.tr.children[2].querySelectorAll(".leg .last").forEach((e, i) => {
    if (i < last.length) {
      r.sum.legs[i].last = last[i];
      rich(e, last[i]);
    }
  });
}

function removeRow(id) {
  const r = rows.get(id);
  if (!r) return;
  r.tr.remove();
  rows.delete(id);
  if (followed && followed.id === id) {
    const st = $("f-state");
    if (st.dataset.state !== "ended") stateBadge(st, "ended");
    showButtons("ended");
  }
}

function tick(r) {
  r.tr.children[4].textContent = r.sum.state === "ringing" ? "" : duration(r.sum.since);
}

function counted() {
  $("count").textContent = String(rows.size);
  $("empty").hidden = rows.size > 0;
}

function handle(type, d) {
  switch (type) {
  case "snapshot": {
    skew = d.now - Date.now();
    sentAt = d.now;
    const ids = new Set(d.calls.map((c) => c.id));
    for (const id of [...rows.keys()]) if (!ids.has(id)) removeRow(id);
    for (const c of d.calls.slice().reverse()) upsert(c);
    break;
  }
  case "calls":
    skew = d.now - Date.now();
    sentAt = d.now;
    for (const c of d.upsert || []) upsert(c);
    for (const [id, last] of Object.entries(d.words || {})) words(id, last);
    for (const id of d.remove || []) removeRow(id);
    break;
  case "call":
    showCall(d);
    break;
  case "event":
    onEvent(d);
    break;
  }
  counted();
}

// A followed call: its description, both legs side by side, partials in
// place, finals kept, keyword alerts marked.
function showCall(d) {
  $("follow").hidden = false;
  $("follow").dataset.id = d.id;
  $("f-id").textContent = d.id;
  followed = { id: d.id, legs: new Map(), alerts: [], lastSeq: 0, since: d.since, state: d.state };
  $("legs").replaceChildren();
  $("f-alerts").replaceChildren();
  $("f-info").replaceChildren();
  for (const r of rows.values()) r.tr.classList.toggle("followed", r.sum.id === d.id);
  if (d.gone) {
    $("f-source").textContent = "";
    stateBadge($("f-state"), "ended");
    showButtons("ended");
    $("f-time").textContent = "";
    return;
  }
  followHead(d);
  for (const [k, v] of Object.entries(d.fields || {}).sort()) {
    if (k === "legs" || k === "source") continue;
    $("f-info").append(el("dt", "", k), el("dd", "", v));
  }
  for (const l of d.legs) column(l.name);
  for (const a of d.all_alerts || []) alertOf(a);
  for (const f of d.finals) finalLine(f);
  for (const p of d.partials || []) partialLine(p);
  for (const x of [...d.finals, ...(d.partials || [])]) followed.lastSeq = Math.max(followed.lastSeq, x.seq);
}

function followHead(sum) {
  $("f-source").textContent = sum.source || "";
  followed.since = sum.since;
  followed.state = sum.state;
  stateBadge($("f-state"), sum.state);
  showButtons(sum.state);
  $("follow").dataset.redact = sum.redact ? "1" : "";
}

function showButtons(state) {
  $("pause").hidden = state !== "live";
  $("resume").hidden = state !== "paused";
  if (followed) followed.state = state;
}

// column is the leg's column, made when new.
function column(name) {
  let c = followed.legs.get(name);
  if (c) return c;
  const div = el("div", "column");
  div.dataset.leg = name;
  const finals = el("div", "finals");
  const partial = el("p", "partial");
  const text = el("span", "text");
  partial.append(text);
  div.append(el("h3", "", name), finals, partial);
  $("legs").append(div);
  c = { div, finals, partial, text };
  followed.legs.set(name, c);
  return c;
}

function phrasesOf(leg, utt) {
  return followed.alerts.filter((a) => a.leg === leg && a.utt === utt).map((a) => a.text);
}

function finalLine(f) {
  const c = column(f.leg);
  if (c.partial.dataset.utt === f.utt) {
    c.text.textContent = "";
    delete c.partial.dataset.utt;
  }
  if (!f.text) return;
  const p = el("p", "final");
  p.dataset.utt = f.utt;
  const text = el("span", "text");
  const hits = phrasesOf(f.leg, f.utt);
  rich(text, f.display || f.text, hits);
  if (hits.length) p.classList.add("hit");
  if (f.redacted) p.dataset.redacted = f.redacted;
  p.append(text);
  c.finals.append(p);
  c.div.scrollIntoView({ block: "end" });
}

function partialLine(p) {
  const c = column(p.leg);
  c.partial.dataset.utt = p.utt;
  rich(c.text, p.text, phrasesOf(p.leg, p.utt));
}

function alertOf(a) {
  followed.alerts.push(a);
  const li = el("li");
  li.append(el("span", "alert new", a.phrase), " " + a.leg + ": " + a.text);
  $("f-alerts").append(li);
  const c = followed.legs.get(a.leg);
  if (!c) return;
  for (const p of c.finals.querySelectorAll(".final")) {
    if (p.dataset.utt === a.utt) p.classList.add("hit");
  }
}

// onEvent is one event of the followed call, as published.
function onEvent(ev) {
  if (!followed || ev.call_id !== followed.id || ev.seq <= followed.lastSeq) return;
  followed.lastSeq = ev.seq;
  const f = ev.fields;
  switch (ev.type) {
  case "call.start":
    showCall({ id: ev.call_id, source: f.source, since: ev.ts, state: "live", fields: f, redact: false,
      legs: (f.legs || "").split(",").filter(Boolean).map((name) => ({ name })), finals: [], partials: [] });
    followed.lastSeq = ev.seq;
    break;
  case "partial":
    partialLine({ leg: f.leg, utt: f.utt, text: f.text });
    break;
  case "final":
    finalLine({ leg: f.leg, utt: f.utt, text: f.text, display: f.display, redacted: f.redacted });
    break;
  case "keyword":
    alertOf({ seq: ev.seq, leg: f.leg, utt: f.utt, phrase: f.phrase, text: f.text });
    break;
  case "dtmf": {
    const c = column(f.leg);
    c.finals.append(el("p", "dtmf", f.digit ? "key " + f.digit : "a key (masked)"));
    break;
  }
  case "pause":
  case "resume": {
    const st = ev.type === "pause" ? "paused" : "live";
    stateBadge($("f-state"), st);
    showButtons(st);
    break;
  }
  case "call.end":
    stateBadge($("f-state"), "ended");
    $("f-state").textContent = "ended (" + f.reason + ")";
    showButtons("ended");
    break;
  }
}

function follow(id) {
  following = id;
  history.replaceState(null, "", id ? "#" + encodeURIComponent(id) : location.pathname);
  if (!id) {
    followed = null;
    $("follow").hidden = true;
    delete $("follow").dataset.id;
    for (const r of rows.values()) r.tr.classList.remove("followed");
  }
  connect();
}

async function control(action) {
  if (!followed) return;
  const res = await fetch("/api/calls/" + encodeURIComponent(followed.id) + "/" + action, {
    method: "POST", headers: headers({ "X-Callscribe-Board": "1" }),
  });
  if (!res.ok) showError(`${action} refused (${res.status}): ${(await res.text()).trim()}`);
}

function askToken(why) {
  if (stream) stream.abort();
  stream = null;
  setStatus("signed out");
  $("list").hidden = true;
  $("follow").hidden = true;
  $("login").hidden = false;
  $("login-why").textContent = why;
  $("signout").hidden = true;
  $("token").focus();
}

// connect opens the board's stream (a new one replaces the old: a snapshot
// comes first) and reads it until it ends, then tries again.
async function connect() {
  if (stream) stream.abort();
  const ctl = new AbortController();
  stream = ctl;
  let url = "/api/board/stream";
  if (following) url += "?follow=" + encodeURIComponent(following);
  setStatus("connecting");
  try {
    const res = await fetch(url, { headers: headers({ Accept: "text/event-stream" }), signal: ctl.signal, cache: "no-store" });
    if (stream !== ctl) return; // replaced meanwhile
    if (res.status === 401) {
      askToken(token ? "That token was refused." : "");
      return;
    }
    if (res.status !== 200) {
      showError(`The board was refused (${res.status}): ${(await res.text()).trim()}`);
      if (res.status === 403) {
        setStatus("refused");
        return;
      }
      throw new Error("retry");
    }
    $("login").hidden = true;
    $("list").hidden = false;
    $("signout").hidden = !token;
    showError("");
    setStatus("connected");
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block = buf.slice(0, i);
        buf = buf.slice(i + 2);
        let type = "message";
        let data = "";
        for (const line of block.split("\n")) {
          if (line.startsWith("event: ")) type = line.slice(7);
          else if (line.startsWith("data: ")) data += line.slice(6);
        }
        if (data) handle(type, JSON.parse(data));
      }
    }
  } catch (e) {
    if (ctl.signal.aborted) return;
  }
  if (stream !== ctl) return;
  setStatus("reconnecting");
  setTimeout(() => { if (stream === ctl) connect(); }, 1500);
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value;
  $("token").value = "";
  sessionStorage.setItem(TOKEN_KEY, token);
  connect();
});
$("signout").addEventListener("click", () => {
  token = "";
  sessionStorage.removeItem(TOKEN_KEY);
  askToken("");
});
$("unfollow").addEventListener("click", () => follow(""));
$("pause").addEventListener("click", () => control("pause"));
$("resume").addEventListener("click", () => control("resume"));
setInterval(() => {
  for (const r of rows.values()) tick(r);
  if (followed && followed.since && followed.state !== "ended") $("f-time").textContent = duration(followed.since);
}, 1000);
connect();

// Callscribe browser page: the microphone goes to the gateway over WHIP
// (RFC 9725); the call's transcript comes back over Server-Sent Events.
"use strict";

const cfg = document.body.dataset; // whip, events
const params = new URLSearchParams(location.search);
const token = params.get("token") || "";
const $ = (id) => document.getElementById(id);

let pc = null;          // RTCPeerConnection
let mic = null;         // MediaStream
let resource = "";      // the WHIP session URL
let events = null;      // EventSource
let lastSeq = 0;        // events are delivered at least once: skip repeats

function setState(s) {
  $("state").textContent = s;
  document.body.dataset.state = s;
}

function showError(msg) {
  $("error").textContent = msg;
  $("error").hidden = !msg;
}

function authHeaders(h) {
  if (token) h.Authorization = "Bearer " + token;
  return h;
}

// iceGathered waits for the candidates to be in the offer (WHIP sends one
// offer, no trickle), at most ms.
function iceGathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => { clearTimeout(t); pc.removeEventListener("icegatheringstatechange", check); resolve(); };
    const check = () => { if (pc.iceGatheringState === "complete") done(); };
    const t = setTimeout(done, ms);
    pc.addEventListener("icegatheringstatechange", check);
  });
}

function setRunning(on) {
  document.body.dataset.running = on ? "1" : "";
  $("toggle").textContent = on ? "Stop" : "Start microphone";
}

async function start() {
  showError("");
  $("toggle").disabled = true;
  try {
    setState("asking for the microphone");
    mic = await navigator.mediaDevices.getUserMedia({
      audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
    pc = new RTCPeerConnection();
    pc.addTransceiver(mic.getAudioTracks()[0], { direction: "sendonly", streams: [mic] });
    pc.addEventListener("connectionstatechange", () => {
      if (!pc) return;
      setState(pc.connectionState);
      if (pc.connectionState === "failed") {
        showError("The connection to the gateway failed.");
        stop();
      }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await iceGathered(pc, 2000);
    setState("connecting");
    const res = await fetch(cfg.whip, {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/sdp" }),
      body: pc.localDescription.sdp,
    });
    const body = await res.text();
    if (res.status !== 201) {
      throw new Error(`The gateway refused the call (${res.status}): ${body.trim()}`);
    }
    resource = new URL(res.headers.get("Location"), location.href).href;
    const callID = decodeURIComponent(resource.split("/").pop());
    await pc.setRemoteDescription({ type: "answer", sdp: body });
    $("call").textContent = "call " + callID;
    follow(callID);
    setRunning(true);
  } catch (e) {
    showError(e.message || String(e));
    hangUp();
    setState("idle");
  } finally {
    $("toggle").disabled = false;
  }
}

// hangUp ends the media; the transcript stream stays open for the last
// final, which the gateway sends after the call ends.
function hangUp() {
  if (resource) {
    fetch(resource, { method: "DELETE", headers: authHeaders({}) }).catch(() => {});
    resource = "";
  }
  if (mic) mic.getTracks().forEach((t) => t.stop());
  if (pc) pc.close();
  mic = null;
  pc = null;
  setRunning(false);
}

function stop() {
  hangUp();
  setState(events ? "ending" : "idle");
}

// fresh is false for an event already shown (same call, same seq).
function fresh(ev) {
  if (ev.seq <= lastSeq) return false;
  lastSeq = ev.seq;
  return true;
}

function follow(callID) {
  if (events) events.close();
  lastSeq = 0;
  $("finals").replaceChildren();
  $("partials").replaceChildren();
  let url = cfg.events + encodeURIComponent(callID);
  if (token) url += "?token=" + encodeURIComponent(token);
  events = new EventSource(url);
  const on = (type, fn) => events.addEventListener(type, (e) => {
    const ev = JSON.parse(e.data);
    if (fresh(ev)) fn(ev);
  });
  let legs = []; // the call's legs, from call.start: more than one are labelled
  on("call.start", (ev) => {
    legs = (ev.fields.legs || "").split(",").filter(Boolean);
  });
  on("partial", (ev) => {
    const p = partialOf(ev.fields.leg);
    p.querySelector(".text").textContent = ev.fields.text;
    p.dataset.utt = ev.fields.utt;
  });
  on("final", (ev) => {
    const p = partialOf(ev.fields.leg);
    if (p.dataset.utt === ev.fields.utt) {
      p.querySelector(".text").textContent = "";
      delete p.dataset.utt;
    }
    if (!ev.fields.text) return; // an utterance of silence
    const f = line("final", ev.fields.leg);
    f.dataset.utt = ev.fields.utt;
    f.querySelector(".text").textContent = ev.fields.text;
    $("finals").appendChild(f);
  });
  // line is a transcript line: the speaker's leg (when the call has
  // several) and the text.
  const line = (cls, leg) => {
    const p = document.createElement("p");
    p.className = cls;
    p.dataset.leg = leg;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = legs.length > 1 ? leg : "";
    const text = document.createElement("span");
    text.className = "text";
    p.append(who, text);
    return p;
  };
  // partialOf is the leg's line of the utterance in progress.
  const partialOf = (leg) => {
    for (const p of $("partials").children) if (p.dataset.leg === leg) return p;
    const p = line("partial", leg);
    $("partials").appendChild(p);
    return p;
  };
  on("call.end", (ev) => {
    events.close();
    events = null;
    document.body.dataset.ended = ev.fields.reason;
    if (pc) hangUp(); // ended by the gateway (timeout, shutdown)
    setState("ended (" + ev.fields.reason + ")");
  });
  events.addEventListener("warning", (e) => showError(JSON.parse(e.data).warning));
  events.addEventListener("error", () => {
    if (events && events.readyState === EventSource.CLOSED) {
      showError("The transcript stream was refused or lost.");
    }
  });
}

$("toggle").addEventListener("click", () => (pc ? stop() : start()));
if (params.get("call")) {
  // Watch a call in progress or ended (a phone call too), from its start.
  $("call").textContent = "call " + params.get("call");
  setState("following");
  follow(params.get("call"));
} else if (params.get("autostart") === "1") {
  start();
}

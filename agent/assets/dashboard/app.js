// voiceagent dashboard: plain JavaScript, no build step, no external resources.
// Everything goes through the authenticated JSON API; the live view follows /api/events (SSE),
// read with fetch() so the bearer token travels in a header, never in a URL.
"use strict";

const TOKEN_KEY = "voiceagent.token";
const $ = (sel, root = document) => root.querySelector(sel);
const el = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
};

const state = {
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  calls: new Map(), // call id -> {card, started, answered, ended, ...}
  histOffset: 0,
  histLimit: 25,
  streamAbort: null,
};

// ---------- API ----------

class AuthError extends Error {}

async function api(path, options = {}) {
  const headers = Object.assign({}, options.headers || {});
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  if (options.body && !headers["Content-Type"]) headers["Content-Type"] = "application/json";
  const res = await fetch(path, Object.assign({}, options, { headers }));
  if (res.status === 401) throw new AuthError("A token is needed.");
  if (res.status === 403) {
    // 403 also refuses an action (OUTBOUND_ALLOWED, cross-site); only a token problem logs out.
    let body = null;
    try { body = await res.clone().json(); } catch (_) { /* not JSON */ }
    if (!body || /token/i.test(body.error || "")) throw new AuthError("That token is not valid.");
  }
  return res;
}

async function apiJson(path, options) {
  const res = await api(path, options);
  let body = null;
  try { body = await res.json(); } catch (_) { /* not JSON */ }
  if (!res.ok) throw new Error((body && body.error) || res.statusText);
  return body;
}

// ---------- helpers ----------

function fmtDuration(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  const m = Math.floor(s / 60);
  const h = Math.floor(m / 60);
  const pad = (n) => String(n).padStart(2, "0");
  return h > 0 ? `${h}:${pad(m % 60)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}
const fmtAt = (ms) => fmtDuration(ms);
const fmtTime = (unixMs) => new Date(unixMs).toLocaleString();
const euro = (cents) => (cents / 100).toLocaleString(undefined, { style: "currency", currency: "EUR" });

function toast(message, bad) {
  const t = $("#toast");
  t.textContent = message;
  t.className = "toast" + (bad ? " bad" : "");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => t.classList.add("hidden"), 4000);
}

// dBFS (-100..0) to a meter width: -60 dBFS and below is empty.
const meterWidth = (db) => Math.max(0, Math.min(100, ((db + 60) / 60) * 100));

// ---------- token ----------

function askToken(message) {
  const dialog = $("#token-dialog");
  $("#token-error").textContent = message || "";
  $("#token-input").value = "";
  if (!dialog.open) dialog.showModal();
  $("#token-input").focus();
}

$("#token-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  state.token = $("#token-input").value.trim();
  try {
    await apiJson("/api/status");
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $("#token-dialog").close();
    start();
  } catch (e) {
    askToken(e.message);
  }
});

$("#forget-token").addEventListener("click", () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = "";
  if (state.streamAbort) state.streamAbort.abort();
  askToken("");
});

// ---------- tabs ----------

document.querySelectorAll(".tab").forEach((tab) =>
  tab.addEventListener("click", () => {
    document.querySelectorAll(".tab").forEach((t) => t.classList.toggle("active", t === tab));
    document.querySelectorAll(".panel").forEach((p) => p.classList.add("hidden"));
    $("#tab-" + tab.dataset.tab).classList.remove("hidden");
    if (tab.dataset.tab === "history") loadHistory();
    if (tab.dataset.tab === "orders") loadOrders();
  })
);

// ---------- status ----------

function showRegistration(reg) {
  const pill = $("#registration");
  const labels = {
    starting: ["starting", "warn"], ip_mode: ["IP mode (no trunk)", "ok"], unknown: ["registering…", "warn"],
    registered: ["registered", "ok"], unregistered: ["unregistered", "bad"], failed: ["registration failed", "bad"],
  };
  const [text, cls] = labels[reg] || [reg, ""];
  pill.textContent = "SIP: " + text;
  pill.className = "pill " + cls;
}

async function loadStatus() {
  const s = await apiJson("/api/status");
  showRegistration(s.sip.registration);
  const detail = s.sip.registration_detail;
  if (detail && detail.reason) $("#registration").title = `${detail.code} ${detail.reason}`;
  const up = s.uptime_s != null ? fmtDuration(s.uptime_s * 1000) : "-";
  $("#facts").textContent = `v${s.version} · up ${up} · ${s.total_calls} calls handled` +
    (s.sip.codecs ? ` · ${s.sip.codecs.slice(0, 3).join(", ")}` : "");
}

// ---------- live calls ----------

function renderActiveCount() {
  const n = [...state.calls.values()].filter((c) => !c.ended).length;
  $("#active-count").textContent = n;
  $("#no-calls").classList.toggle("hidden", state.calls.size > 0);
}

function addLine(call, cls, label, text) {
  const box = call.transcript;
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  const line = el("div", "line " + cls);
  if (label) line.append(el("span", "t", label));
  line.append(document.createTextNode(text));
  box.append(line);
  if (stick) box.scrollTop = box.scrollHeight;
  return line;
}

function applyStory(call, ev) {
  switch (ev.type) {
    case "transcript":
      addLine(call, ev.speaker === "caller" ? "caller" : "agent", `${ev.speaker} · ${fmtAt(ev.at_ms)}`, ev.text);
      break;
    case "tool_call": {
      const line = addLine(call, "tool" + (ev.ok ? "" : " failed"), `tool · ${ev.duration_ms} ms`, `${ev.name}(${ev.arguments}) → ${ev.output}`);
      line.dataset.tool = ev.name;
      break;
    }
    case "barge_in":
      addLine(call, "note", null, `caller interrupted after ${ev.heard_ms} ms`);
      break;
    case "realtime_error":
      addLine(call, "note", null, `Realtime error ${ev.code}: ${ev.message}`);
      break;
    case "call_answered":
      markAnswered(call);
      break;
  }
}

function markAnswered(call) {
  call.answered = true;
  if (!call.ended) {
    call.stateEl.textContent = "answered";
    call.stateEl.className = "state answered";
  }
}

function ensureCall(info) {
  let call = state.calls.get(info.call);
  if (call) return call;
  const card = el("article", "call-card");
  card.dataset.call = info.call;
  const head = el("div", "call-head");
  const who = el("span", "who", info.direction === "outgoing" ? "→ " + (info.to || "?") : (info.from || "unknown caller"));
  const id = el("span", "id", info.call);
  const stateEl = el("span", "state", "ringing");
  head.append(who, id, stateEl);

  const facts = el("div", "call-facts");
  const fact = (label) => {
    const span = el("span", null, label + " ");
    const b = el("b", null, "-");
    span.append(b);
    facts.append(span);
    return b;
  };
  const durationEl = fact("duration");
  const codecEl = fact("codec");
  const jitterEl = fact("jitter");
  const lossEl = fact("lost");
  const rttEl = fact("RTT");
  const toEl = fact(info.direction === "outgoing" ? "from" : "called");
  toEl.textContent = (info.direction === "outgoing" ? info.from : info.to) || "-";

  const meters = el("div", "meters");
  const meter = (who, label) => {
    const m = el("div", "meter " + who);
    m.dataset.dir = who;
    const fill = el("div", "fill");
    m.append(fill);
    const db = el("span", "db", "-∞ dB");
    meters.append(el("span", null, label), m, db);
    return { fill, db };
  };
  const callerMeter = meter("caller", "caller");
  const agentMeter = meter("agent", "agent");

  const transcript = el("div", "transcript");
  const actions = el("div", "call-actions");
  const transferBtn = el("button", "secondary transfer", "Transfer…");
  const hangupBtn = el("button", "danger hangup", "Hang up");
  actions.append(transferBtn, hangupBtn);
  card.append(head, facts, meters, transcript, actions);
  $("#calls").prepend(card);

  call = {
    id: info.call, card, stateEl, durationEl, codecEl, jitterEl, lossEl, rttEl, callerMeter, agentMeter,
    transcript, hangupBtn, transferBtn, started: Date.now() - (info.duration_ms || 0), answered: false, ended: false,
  };
  state.calls.set(info.call, call);
  if (info.codec) codecEl.textContent = `${info.codec}/${info.clock_rate}`;

  hangupBtn.addEventListener("click", async () => {
    hangupBtn.disabled = true;
    try {
      await apiJson(`/api/calls/${encodeURIComponent(call.id)}/hangup`, { method: "POST" });
      toast(`Hanging up ${call.id}`);
    } catch (e) {
      hangupBtn.disabled = call.ended;
      handleError(e);
    }
  });
  transferBtn.addEventListener("click", () => {
    $("#transfer-call").textContent = call.id;
    $("#transfer-dialog").dataset.call = call.id;
    $("#transfer-target").value = "";
    $("#transfer-dialog").showModal();
  });
  renderActiveCount();
  return call;
}

function endCall(ev) {
  const call = state.calls.get(ev.call);
  if (!call || call.ended) return;
  call.ended = true;
  call.card.classList.add("ended");
  call.stateEl.textContent = "ended · " + (ev.reason || "");
  call.stateEl.className = "state ended";
  call.durationEl.textContent = fmtDuration(ev.duration_ms || Date.now() - call.started);
  call.hangupBtn.disabled = true;
  call.transferBtn.disabled = true;
  call.callerMeter.fill.style.width = "0%";
  call.agentMeter.fill.style.width = "0%";
  renderActiveCount();
  // Leave the finished card visible for a moment, then it lives on in History.
  setTimeout(() => {
    call.card.remove();
    state.calls.delete(call.id);
    renderActiveCount();
  }, 15000);
}

async function loadActive() {
  const list = await apiJson("/api/calls?limit=1");
  $("#recent-count").textContent = list.recent.total;
  for (const info of list.active) {
    if (state.calls.has(info.call)) continue;
    const call = ensureCall(info);
    try {
      const detail = await apiJson(`/api/calls/${encodeURIComponent(info.call)}`);
      if (detail.answered) markAnswered(call);
      const story = [...detail.transcript, ...detail.tool_calls, ...detail.barge_ins, ...detail.errors];
      story.sort((a, b) => (a.at_ms || 0) - (b.at_ms || 0));
      story.forEach((ev) => applyStory(call, ev));
    } catch (e) { /* the call may have just ended */ }
  }
}

function onEvent(ev) {
  switch (ev.type) {
    case "hello":
      $("#stream-state").textContent = "live";
      $("#stream-state").className = "pill ok subtle";
      loadActive().catch(handleError);
      break;
    case "lagged":
      loadActive().catch(handleError);
      break;
    case "call_started":
      ensureCall(ev);
      break;
    case "call_ended":
      endCall(ev);
      if (!$("#tab-history").classList.contains("hidden")) loadHistory();
      loadStatus().catch(() => {});
      break;
    case "levels": {
      const call = state.calls.get(ev.call);
      if (!call || call.ended) break;
      call.callerMeter.fill.style.width = meterWidth(ev.caller_dbfs) + "%";
      call.agentMeter.fill.style.width = meterWidth(ev.agent_dbfs) + "%";
      call.callerMeter.db.textContent = ev.caller_dbfs <= -99 ? "-∞ dB" : `${ev.caller_dbfs.toFixed(0)} dB`;
      call.agentMeter.db.textContent = ev.agent_dbfs <= -99 ? "-∞ dB" : `${ev.agent_dbfs.toFixed(0)} dB`;
      break;
    }
    case "quality": {
      const call = state.calls.get(ev.call);
      if (!call) break;
      call.codecEl.textContent = `${ev.codec}/${ev.clock_rate}`;
      call.jitterEl.textContent = `${ev.rx_jitter_ms.toFixed(1)} ms`;
      call.lossEl.textContent = `${ev.rx_lost}/${ev.rx_packets}`;
      call.rttEl.textContent = ev.rtt_ms != null ? `${ev.rtt_ms.toFixed(0)} ms` : "-";
      break;
    }
    case "registration":
      loadStatus().catch(() => {});
      break;
    default: {
      const call = state.calls.get(ev.call);
      if (call) applyStory(call, ev);
    }
  }
}

// Server-Sent Events over fetch (EventSource cannot send the Authorization header).
async function followEvents() {
  for (;;) {
    const abort = new AbortController();
    state.streamAbort = abort;
    try {
      const res = await api("/api/events", { signal: abort.signal, headers: { Accept: "text/event-stream" } });
      if (!res.ok || !res.body) throw new Error("event stream: " + res.status);
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let cut;
        while ((cut = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, cut);
          buffer = buffer.slice(cut + 2);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (!data) continue;
          try { onEvent(JSON.parse(data)); } catch (e) { console.error("bad event", e, data); }
        }
      }
    } catch (e) {
      if (e instanceof AuthError) { askToken(e.message); return; }
      if (abort.signal.aborted) return;
    }
    $("#stream-state").textContent = "reconnecting";
    $("#stream-state").className = "pill warn subtle";
    await new Promise((r) => setTimeout(r, 2000));
  }
}

// Durations tick locally; the server sends no per-second events for them.
setInterval(() => {
  for (const call of state.calls.values()) {
    if (!call.ended) call.durationEl.textContent = fmtDuration(Date.now() - call.started);
  }
}, 1000);

$("#dial-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const uri = $("#dial-uri").value.trim();
  if (!uri) return;
  try {
    const r = await apiJson("/api/calls", { method: "POST", body: JSON.stringify({ uri }) });
    toast(`Calling ${uri} (${r.call})`);
    $("#dial-uri").value = "";
  } catch (e) { handleError(e); }
});

$("#transfer-cancel").addEventListener("click", () => $("#transfer-dialog").close());
$("#transfer-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const id = $("#transfer-dialog").dataset.call;
  const target = $("#transfer-target").value.trim();
  $("#transfer-dialog").close();
  try {
    await apiJson(`/api/calls/${encodeURIComponent(id)}/transfer`, { method: "POST", body: JSON.stringify({ target }) });
    toast(`Transferring ${id} to ${target}`);
  } catch (e) { handleError(e); }
});

// ---------- history ----------

async function loadHistory() {
  const list = await apiJson(`/api/calls?offset=${state.histOffset}&limit=${state.histLimit}`);
  const body = $("#history-table tbody");
  body.replaceChildren();
  $("#recent-count").textContent = list.recent.total;
  $("#hist-page").textContent = `${Math.floor(state.histOffset / state.histLimit) + 1} / ${Math.max(1, Math.ceil(list.recent.total / state.histLimit))}`;
  for (const c of list.recent.items) {
    const tr = el("tr");
    tr.dataset.call = c.call;
    const outcome = el("span", "badge " + c.outcome, c.outcome);
    const cells = [fmtTime(c.started_at), c.call, c.direction === "outgoing" ? "→ " + c.to : c.from, c.codec || "-", fmtDuration(c.duration_ms)];
    cells.forEach((v) => tr.append(el("td", null, v)));
    const td = el("td");
    td.append(outcome);
    tr.append(td);
    tr.addEventListener("click", () => {
      body.querySelectorAll("tr").forEach((r) => r.classList.toggle("selected", r === tr));
      showCall(c.call).catch(handleError);
    });
    body.append(tr);
  }
}

$("#hist-prev").addEventListener("click", () => { state.histOffset = Math.max(0, state.histOffset - state.histLimit); loadHistory().catch(handleError); });
$("#hist-next").addEventListener("click", () => { state.histOffset += state.histLimit; loadHistory().catch((e) => { state.histOffset -= state.histLimit; handleError(e); }); });

function dl(pairs) {
  const d = el("dl");
  for (const [k, v] of pairs) d.append(el("dt", null, k), el("dd", null, v == null || v === "" ? "-" : v));
  return d;
}

async function showCall(id) {
  const c = await apiJson(`/api/calls/${encodeURIComponent(id)}`);
  const pane = $("#call-detail");
  pane.replaceChildren();
  pane.append(el("h3", null, `${c.call} · ${c.direction === "outgoing" ? "to " + c.to : "from " + c.from}`));
  const q = c.quality || {};
  pane.append(dl([
    ["Started", c.started_at ? fmtTime(c.started_at) : null],
    ["Called number", c.to],
    ["Codec", c.codec ? `${c.codec} / ${c.clock_rate} Hz` : null],
    ["Answered after", c.answered_after_ms != null ? `${c.answered_after_ms} ms` : "not answered"],
    ["Duration", c.duration_ms != null ? fmtDuration(c.duration_ms) : null],
    ["Jitter / lost / RTT", q.codec ? `${q.rx_jitter_ms.toFixed(1)} ms / ${q.rx_lost} of ${q.rx_packets} / ${q.rtt_ms != null ? q.rtt_ms.toFixed(0) + " ms" : "-"}` : null],
    ["Barge-ins", c.barge_ins],
    ["Ended", c.end_reason],
    ["Outcome", c.outcome],
  ]));
  const rec = el("div", "recording");
  pane.append(rec);
  loadRecording(c.call, rec);
  const box = el("div", "transcript");
  pane.append(box);
  const fake = { transcript: box };
  const entries = ((c.transcript && c.transcript.entries) || []).map((e) => ({ ...e, at_ms: e.at_ms }));
  const items = [];
  for (const e of entries) {
    if (e.kind === "caller" || e.kind === "agent") items.push({ at: e.at_ms, cls: e.kind, label: `${e.kind} · ${fmtAt(e.at_ms)}`, text: e.text + (e.heard_ms != null ? ` (heard ${e.heard_ms} ms)` : "") });
  }
  for (const t of c.tool_calls || []) items.push({ at: t.at_ms, cls: "tool" + (t.ok ? "" : " failed"), label: `tool · ${t.duration_ms} ms`, text: `${t.name}(${t.arguments}) → ${t.output}` });
  items.sort((a, b) => a.at - b.at);
  for (const it of items) addLine(fake, it.cls, it.label, it.text);
  for (const err of c.errors || []) addLine(fake, "note", null, "error: " + err);
  if (!items.length) box.append(el("p", "empty", "No transcript."));
}

async function loadRecording(id, box) {
  try {
    const res = await api(`/api/calls/${encodeURIComponent(id)}/recording`);
    if (!res.ok) {
      let msg = res.statusText;
      try { msg = (await res.json()).error; } catch (_) { /* keep status text */ }
      box.append(el("p", "empty", "Recording: " + msg));
      return;
    }
    const audio = el("audio");
    audio.controls = true;
    audio.src = URL.createObjectURL(await res.blob());
    box.append(audio);
  } catch (e) { box.append(el("p", "empty", "Recording unavailable.")); }
}

// ---------- orders ----------

async function loadOrders() {
  const form = new FormData($("#order-filter"));
  const params = new URLSearchParams();
  for (const [k, v] of form.entries()) if (v) params.set(k, v);
  const list = await apiJson("/api/orders?" + params.toString());
  const body = $("#orders-table tbody");
  body.replaceChildren();
  $("#no-orders").classList.toggle("hidden", list.items.length > 0);
  for (const o of list.items) {
    const tr = el("tr");
    const badge = el("span", "badge " + o.status, o.status);
    const status = el("td");
    status.append(badge);
    tr.append(el("td", null, o.order_no || "-"), status, el("td", null, o.caller), el("td", null, new Date(o.ended_at).toLocaleString()),
      el("td", "num", o.items.length), el("td", "num", euro(o.total_net_cents)));
    tr.addEventListener("click", () => {
      body.querySelectorAll("tr").forEach((r) => r.classList.toggle("selected", r === tr));
      showOrder(o);
    });
    body.append(tr);
  }
}

function showOrder(o) {
  const pane = $("#order-detail");
  pane.replaceChildren();
  pane.append(el("h3", null, `Order ${o.order_no || "(abandoned)"}`));
  pane.append(dl([["Status", o.status], ["Caller", o.caller], ["Call", o.call_id], ["Started", new Date(o.started_at).toLocaleString()], ["Ended", new Date(o.ended_at).toLocaleString()], ["Net total", euro(o.total_net_cents)]]));
  const table = el("table", "grid");
  const head = el("tr");
  ["Article", "Name", "Qty", "Unit price", "Total"].forEach((h) => head.append(el("th", null, h)));
  const thead = el("thead");
  thead.append(head);
  const tbody = el("tbody");
  for (const it of o.items) {
    const tr = el("tr");
    tr.append(el("td", null, it.article_no), el("td", null, it.name), el("td", "num", `${it.quantity} ${it.unit}`),
      el("td", "num", euro(it.unit_price_cents)), el("td", "num", euro(Math.round(it.quantity * it.unit_price_cents))));
    tbody.append(tr);
  }
  table.append(thead, tbody);
  pane.append(table);
}

$("#order-filter").addEventListener("submit", (ev) => { ev.preventDefault(); loadOrders().catch(handleError); });

// ---------- start ----------

function handleError(e) {
  if (e instanceof AuthError) askToken(e.message);
  else toast(e.message || String(e), true);
}

let started = false;
function start() {
  loadStatus().catch(handleError);
  if (!started) {
    started = true;
    setInterval(() => loadStatus().catch(() => {}), 10000);
  }
  if (state.streamAbort) state.streamAbort.abort();
  followEvents();
}

(async () => {
  try {
    await apiJson("/api/status");
    start();
  } catch (e) {
    if (e instanceof AuthError) askToken(state.token ? e.message : "");
    else toast("Cannot reach voiceagent: " + e.message, true);
  }
})();

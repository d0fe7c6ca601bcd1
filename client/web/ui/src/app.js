// The jsn dashboard: speaks NATS over WebSocket from the browser (the official nats.js client).
// State is pushed: the controller publishes the lab's summary on jsn.ctl.dash.lab whenever it
// changes; consoles arrive on jsn.tap.<exporter>.<path> (raw bytes), history first; power
// drivers' states on jsn.tap.<exporter>.~state.<path>. A login with a lease (session.write) may
// type into that lease's consoles through their byte streams (docs/protocol.md "Byte streams").
import { wsconnect, jwtAuthenticator, tokenAuthenticator, headers } from "@nats-io/nats-core";
import { Terminal } from "@xterm/xterm";

const $ = (sel) => document.querySelector(sel);
const el = (tag, attrs = {}, ...kids) => {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
};
const enc = new TextEncoder();
const dec = new TextDecoder();

let nc = null;        // the NATS connection
let session = null;   // what /api/exchange returned
let lab = { exporters: [], leases: [], seq: 0 };
let page = null;      // the open exporter page: {name, sub, terms}

function status(text, cls = "") {
  const s = $("#status");
  s.textContent = text;
  s.className = cls;
}

async function exchange() {
  const m = /token=([A-Za-z0-9_-]+)/.exec(location.hash);
  if (m) {
    const r = await fetch("api/exchange", { method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token: m[1] }) });
    const body = await r.json().catch(() => ({ error: r.statusText }));
    if (!r.ok) throw new Error(body.error || r.statusText);
    sessionStorage.setItem("jsn-session", JSON.stringify(body));
    history.replaceState(null, "", location.pathname + "#/");
    return body;
  }
  const saved = sessionStorage.getItem("jsn-session");
  if (saved) {
    const s = JSON.parse(saved);
    if (!s.expires || new Date(s.expires) > new Date()) return s;
  }
  throw new Error("no login token: run 'jsn dashboard' and open the URL it prints");
}

async function connect() {
  const opts = { servers: session.ws, name: "jsn-dashboard", inboxPrefix: session.inbox || undefined };
  if (session.jwt) opts.authenticator = jwtAuthenticator(session.jwt, enc.encode(session.seed));
  else if (session.token) opts.authenticator = tokenAuthenticator(session.token);
  nc = await wsconnect(opts);
  (async () => {
    for await (const s of nc.status()) {
      if (s.type === "disconnect") status("disconnected — reconnecting", "bad");
      if (s.type === "reconnect") { status("connected", "ok"); nc.publish("jsn.ctl.dash.refresh"); }
    }
  })();
  nc.closed().then((err) => {
    status("closed" + (err ? ": " + err.message : "") + " — run jsn dashboard again", "bad");
    // A revoked login (its identity deleted, its lease ended) ends here: no more input.
    if (page) for (const t of Object.values(page.terms)) if (t.input && t.input.state !== "ended") t.input.stop("ended", "the connection closed (the login or its lease ended)");
  });
  status("connected as " + session.name, "ok");
  if (session.state) apply(session.state);
  const sub = nc.subscribe("jsn.ctl.dash.lab");
  (async () => {
    for await (const m of sub) {
      try { apply(JSON.parse(dec.decode(m.data))); } catch (e) { console.error("bad lab state", e); }
    }
  })();
  await nc.flush();
  // Ask for the current state now that the subscription is in place (nothing missed between
  // the exchange's snapshot and the subscription).
  if (session.mode !== "local") nc.publish("jsn.ctl.dash.refresh");
}

function apply(state) {
  if (state.seq && state.seq < lab.seq && state.epoch === lab.epoch) return;
  lab = state;
  render();
}

function left(end) {
  if (!end) return "";
  const s = Math.max(0, Math.round((new Date(end) - Date.now()) / 1000));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}h${String(m).padStart(2, "0")}m` : `${m}m${String(s % 60).padStart(2, "0")}s`;
}

function labels(l) {
  return Object.entries(l || {}).map(([k, v]) => el("span", { class: "label", text: `${k}=${v}` }));
}

function render() {
  const route = location.hash.replace(/^#\/?/, "");
  if (route.startsWith("x/")) return renderExporter(decodeURIComponent(route.slice(2)));
  closePage();
  const main = $("#main");
  main.replaceChildren();
  const et = el("table", { id: "exporters" },
    el("tr", {}, ...["exporter", "state", "labels", "lease holder", "queue"].map((h) => el("th", { text: h }))));
  for (const x of lab.exporters || []) {
    const a = el("a", { href: "#/x/" + encodeURIComponent(x.name), text: x.name });
    et.append(el("tr", { "data-exporter": x.name, class: x.online ? "online" : "offline" },
      el("td", {}, a),
      el("td", { class: "state", text: x.online ? "online" : "offline" }),
      el("td", {}, ...labels(x.labels)),
      el("td", { class: "holder", text: x.holder || "" }),
      el("td", { class: "queue", text: String(x.queue || 0) })));
  }
  const lt = el("table", { id: "leases" },
    el("tr", {}, ...["exporter", "holder", "status", "time left", "position", "reason"].map((h) => el("th", { text: h }))));
  for (const l of lab.leases || []) {
    lt.append(el("tr", { "data-lease": `${l.exporter || l.selector}/${l.client}`, class: l.status },
      el("td", { text: l.exporter || l.selector || "" }),
      el("td", { class: "holder", text: l.client }),
      el("td", { text: l.status }),
      el("td", { class: "left", "data-end": l.end || "", text: l.status === "active" ? left(l.end) : "" }),
      el("td", { text: l.position ? String(l.position) : "" }),
      el("td", { text: l.reason || "" })));
  }
  main.append(el("h2", { text: "Exporters" }), et, el("h2", { text: "Leases" }), lt);
}

function closePage() {
  if (!page) return;
  page.sub?.unsubscribe();
  for (const t of Object.values(page.terms)) {
    t.input?.close("the page closed the terminal");
    t.term.dispose();
  }
  page = null;
}

const POWER = "jsn.power.v1";

function tree(nodes) {
  const ul = el("ul", { class: "tree" });
  for (const n of nodes || []) {
    const li = el("li", { "data-path": n.path }, el("b", { text: n.name }), " ", el("span", { class: "type", text: n.type }),
      n.interface ? el("span", { class: "iface", text: " " + n.interface }) : "",
      n.interface === POWER && !n.ref ? el("span", { class: "power unknown", "data-power": n.path, text: "unknown" }) : "",
      n.unavailable ? el("span", { class: "bad", text: " unavailable: " + n.unavailable }) : "");
    if (n.methods?.length) li.append(el("div", { class: "methods", text: n.methods.map((m) => m.name).join(" ") }));
    if (n.children?.length) li.append(tree(n.children));
    ul.append(li);
  }
  return ul;
}

function consoles(nodes, out = []) {
  for (const n of nodes || []) {
    if (n.interface === "jsn.serial.v1") out.push(n.path);
    consoles(n.children, out);
  }
  return out;
}

function powers(nodes, out = []) {
  for (const n of nodes || []) {
    if (n.interface === POWER && !n.ref) out.push(n.path);
    powers(n.children, out);
  }
  return out;
}

// showPower shows a power driver's state ("on", "off" or "unknown") next to it in the tree.
function showPower(path, state) {
  const s = ["on", "off"].includes(state) ? state : "unknown";
  for (const e of document.querySelectorAll(`[data-power="${CSS.escape(path)}"]`)) {
    e.textContent = s;
    e.className = "power " + s;
  }
}

function renderExporter(name) {
  const x = (lab.exporters || []).find((e) => e.name === name);
  const main = $("#main");
  if (!page || page.name !== name) {
    closePage();
    main.replaceChildren();
    page = { name, terms: {}, head: el("div", { id: "head" }) };
    main.append(el("p", {}, el("a", { href: "#/", text: "← all exporters" })), el("h2", { text: name }), page.head);
    const paths = consoles(x?.describe?.drivers);
    const pw = powers(x?.describe?.drivers);
    main.append(el("h3", { text: "Drivers" }), tree(x?.describe?.drivers));
    const w = session.write;
    for (const p of paths) {
      const writable = !!w && w.exporter === name && (w.consoles || []).includes(p);
      const mode = el("span", { class: "input " + (writable ? "connecting" : "readonly"),
        text: writable ? "input: connecting…" : "read-only (no lease)" });
      if (!writable) mode.title = session.write ? "your login's lease is on " + w.exporter : "log in with jsn dashboard --lease ID to type";
      const box = el("div", { class: "console", "data-path": p, "data-input": writable ? "connecting" : "readonly" });
      main.append(el("h3", { text: "Console " + p + " " }, mode), box);
      const term = new Terminal({ scrollback: 5000, convertEol: false, fontSize: 13, rows: 24, cols: 100, disableStdin: !writable });
      term.open(box);
      const t = { term, box, mode, end: -1, pending: [], live: false, text: "" };
      page.terms[p] = t;
      if (writable) {
        t.input = new ConsoleInput(w, p, (state, why) => inputState(t, state, why));
        term.onData((d) => t.input.send(enc.encode(d)));
        t.input.open();
      }
    }
    if (paths.length || pw.length) attach(name, paths, pw);
  }
  page.head.replaceChildren(
    el("span", { class: "state " + (x?.online ? "ok" : "bad"), text: x ? (x.online ? "online" : "offline") : "unknown exporter" }), " ",
    ...labels(x?.labels), " ",
    el("span", { class: "holder", text: x?.holder ? "leased by " + x.holder + (x.end ? " (" + left(x.end) + " left)" : "") : "free" }));
}

// attach subscribes to the exporter's taps, then asks for each console's history (the reply
// comes on a subject under the same wildcard) and writes history first, then the live bytes past
// its end offset: no gap, no duplicate.
function attach(name, paths, pw = []) {
  const pre = `jsn.tap.${name}.`;
  const tokens = {};
  const states = {}; // history token → power driver path
  page.sub = nc.subscribe(pre + ">", {
    callback: (err, m) => {
      if (err || !page || page.name !== name) return;
      const rest = m.subject.slice(pre.length);
      if (rest.startsWith("~history.")) {
        const tok = rest.slice(9);
        if (states[tok]) {
          // The exporter sends a state reply and state messages in the order of the changes,
          // all on this one subscription: the last one seen is current.
          if (!m.headers?.get("Nats-Service-Error-Code")) showPower(states[tok], dec.decode(m.data));
          delete states[tok];
          return;
        }
        const p = tokens[tok];
        if (p) gotHistory(p, m);
        return;
      }
      if (rest.startsWith("~state.")) {
        showPower(rest.slice(7), dec.decode(m.data));
        return;
      }
      const t = page.terms[rest];
      if (!t) return;
      const off = Number(m.headers?.get("Jsn-Tap-Offset") || -1);
      if (!t.live) { t.pending.push({ off, data: m.data }); return; }
      write(t, off, m.data);
    },
  });
  nc.flush().then(() => {
    for (const p of paths) {
      const tok = Math.random().toString(36).slice(2);
      tokens[tok] = p;
      nc.publish(`jsn.x.${name}.history.${p}`, new Uint8Array(0), { reply: `${pre}~history.${tok}` });
      // No history (an exporter without it, or none kept): go live after a moment.
      setTimeout(() => { const t = page?.terms[p]; if (t && !t.live) goLive(t, -1); }, 1500);
    }
    for (const p of pw) {
      const tok = "s" + Math.random().toString(36).slice(2);
      states[tok] = p;
      nc.publish(`jsn.x.${name}.history.${p}`, new Uint8Array(0), { reply: `${pre}~history.${tok}` });
    }
  });
}

function gotHistory(p, m) {
  const t = page.terms[p];
  if (!t || t.live) return;
  if (m.headers?.hasError || m.headers?.get("Nats-Service-Error-Code")) { goLive(t, -1); return; }
  write(t, -1, m.data);
  goLive(t, Number(m.headers?.get("Jsn-Tap-Offset") || -1));
}

function goLive(t, end) {
  t.end = end;
  t.live = true;
  for (const { off, data } of t.pending) write(t, off, data);
  t.pending = [];
}

// write writes data (which starts at device offset off, -1 unknown) past what was written.
function write(t, off, data) {
  if (off >= 0 && t.end >= 0) {
    if (off + data.length <= t.end) return;
    if (off < t.end) data = data.subarray(t.end - off);
  }
  if (off >= 0) t.end = Math.max(t.end, off + data.length);
  // window.jsnOnConsole(path, text), if a harness set it (bench/: the byte-to-screen latency),
  // is called once xterm.js has taken the bytes in.
  const hook = window.jsnOnConsole;
  if (hook) {
    const text = new TextDecoder().decode(data);
    t.term.write(data, () => hook(t.box.dataset.path, text));
  } else {
    t.term.write(data);
  }
  t.text = (t.text + dec.decode(data, { stream: true })).slice(-65536);
  t.box.dataset.seen = String(Number(t.box.dataset.seen || 0) + data.length);
  window.jsnConsoleText = window.jsnConsoleText || {};
  window.jsnConsoleText[t.box.dataset.path] = t.text;
}

// inputState shows whether a console takes input.
function inputState(t, state, why) {
  const text = { open: "input: typing goes to the device", connecting: "input: connecting…",
    closed: "input closed" + (why ? ": " + why : "") + " — type to reconnect",
    ended: "read-only: " + (why || "the lease ended") }[state];
  t.mode.textContent = text;
  t.mode.className = "input " + state;
  t.box.dataset.input = state;
  if (state === "ended") t.term.options.disableStdin = true;
}

// A console's input: the byte stream its connect method opens (docs/protocol.md "Byte streams"):
// an open call with Jsn-Lease, Jsn-Stream and Jsn-Stream-Window; then DATA frames within the
// exporter's credit; the exporter's output frames on the stream are acknowledged (CREDIT) and
// dropped, since the tap shows the console. Closing the terminal sends RST CANCELLED.
const WINDOW = 256 * 1024;
const MAX_DATA = 128 * 1024;
const F_DATA = 1, F_CREDIT = 2, F_FIN = 3, F_RST = 4;

function frame(type, off, payload = new Uint8Array(0)) {
  const b = new Uint8Array(9 + payload.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, type);
  v.setBigUint64(1, BigInt(off));
  b.set(payload, 9);
  return b;
}

class ConsoleInput {
  constructor(w, path, onState) {
    this.w = w;
    this.path = path;
    this.onState = onState;
    this.state = "closed";
    this.queue = [];
  }

  async open() {
    if (this.state === "open" || this.state === "connecting" || this.state === "ended") return;
    const w = this.w;
    this.state = "connecting";
    this.onState("connecting");
    const sid = "w" + Math.random().toString(36).slice(2, 12);
    const reply = `${w.inbox}.${sid}`;
    this.sid = sid;
    this.sent = 0;        // bytes sent
    this.credit = 0;      // bytes the exporter lets us send in all
    this.recv = 0;        // bytes received
    this.granted = WINDOW; // bytes we let it send in all
    const tok = w.stream || w.lease; // the stream subjects' token: the lease and whose it is
    this.toStream = `jsn.x.${w.exporter}.stream.${tok}.${sid}`;
    try {
      this.out = nc.subscribe(`jsn.x.${w.exporter}.out.${tok}.${sid}`, { callback: (err, m) => { if (!err) this.frame(m.data); } });
      const rsub = nc.subscribe(reply, { max: 1 });
      await nc.flush();
      const h = headers();
      h.set("Jsn-Lease", w.lease);
      h.set("Jsn-Stream", sid);
      h.set("Jsn-Stream-Window", String(WINDOW));
      nc.publish(`jsn.x.${w.exporter}.call.${this.path}.${w.method || "connect"}`, new Uint8Array(0), { reply, headers: h });
      const m = await Promise.race([
        (async () => { for await (const m of rsub) return m; })(),
        new Promise((_, rej) => setTimeout(() => rej(new Error("the exporter did not answer within 10s")), 10000)),
      ]);
      rsub.unsubscribe();
      if (!m) throw new Error("no answer");
      const code = m.headers?.get("Nats-Service-Error-Code");
      if (code || m.headers?.code === 503) {
        const msg = m.headers?.get("Nats-Service-Error") || (m.headers?.code === 503 ? "the exporter is not answering" : code);
        const e = new Error(msg);
        e.code = code;
        throw e;
      }
      if (this.sid !== sid) return; // closed meanwhile
      this.credit = Number(m.headers?.get("Jsn-Stream-Window") || 0);
      this.state = "open";
      this.onState("open");
      // Keepalive: re-send our credit every 10 s (a peer silent for 35 s is reset).
      this.keep = setInterval(() => this.pub(frame(F_CREDIT, this.granted)), 10000);
      this.flush();
    } catch (e) {
      this.stop(e.code === "PERMISSION_DENIED" ? "ended" : "closed", e.message);
    }
  }

  pub(b) {
    try { nc.publish(this.toStream, b); } catch (e) { this.stop("closed", e.message); }
  }

  // frame handles an exporter → page frame.
  frame(b) {
    if (b.length < 9) return;
    const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const type = v.getUint8(0), off = Number(v.getBigUint64(1));
    if (type === F_DATA) {
      this.recv += b.length - 9;
      if (this.recv + WINDOW - this.granted >= WINDOW / 2) {
        this.granted = this.recv + WINDOW;
        this.pub(frame(F_CREDIT, this.granted));
      }
    } else if (type === F_CREDIT) {
      if (off > this.credit) { this.credit = off; this.flush(); }
    } else if (type === F_FIN) {
      this.stop("closed", "the console closed");
    } else if (type === F_RST) {
      const p = dec.decode(b.subarray(9));
      const i = p.indexOf("\0");
      const code = i >= 0 ? p.slice(0, i) : p, msg = i >= 0 ? p.slice(i + 1) : "";
      this.stop(code === "PERMISSION_DENIED" ? "ended" : "closed", msg || code, true);
    }
  }

  send(bytes) {
    if (this.state === "ended") return;
    this.queue.push(bytes);
    if (this.state === "closed") this.open();
    else this.flush();
  }

  flush() {
    if (this.state !== "open") return;
    while (this.queue.length && this.sent < this.credit) {
      let b = this.queue[0];
      const n = Math.min(b.length, this.credit - this.sent, MAX_DATA);
      if (n < b.length) { this.queue[0] = b.subarray(n); b = b.subarray(0, n); } else this.queue.shift();
      this.pub(frame(F_DATA, this.sent, b));
      this.sent += n;
    }
  }

  // stop ends the stream on our side; state "ended" is final (no lease), "closed" reopens on
  // the next keystroke. reset: the exporter reset it (nothing to send back).
  stop(state, why, reset = false) {
    clearInterval(this.keep);
    this.out?.unsubscribe();
    this.out = null;
    this.sid = null;
    if (state === "ended") this.queue = [];
    this.state = state;
    this.onState(state, why);
  }

  // close is the page closing the terminal: RST CANCELLED.
  close(why) {
    if (this.state === "open") this.pub(frame(F_RST, 0, enc.encode("CANCELLED\0" + why)));
    this.stop("ended", why);
  }
}

window.addEventListener("pagehide", () => {
  if (page) for (const t of Object.values(page.terms)) t.input?.close("the page closed");
});

setInterval(() => {
  for (const td of document.querySelectorAll("td.left[data-end]")) if (td.dataset.end) td.textContent = left(td.dataset.end);
}, 1000);
window.addEventListener("hashchange", render);

(async () => {
  try {
    status("logging in…");
    session = await exchange();
    await connect();
  } catch (e) {
    status(e.message, "bad");
  }
})();

// The jsn dashboard: speaks NATS over WebSocket from the browser (the official nats.js client).
// State is pushed: the controller publishes the lab's summary on jsn.ctl.dash.lab whenever it
// changes; consoles arrive on jsn.tap.<exporter>.<path> (raw bytes), history first.
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
  nc.closed().then((err) => status("closed" + (err ? ": " + err.message : ""), "bad"));
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
  for (const t of Object.values(page.terms)) t.term.dispose();
  page = null;
}

function tree(nodes) {
  const ul = el("ul", { class: "tree" });
  for (const n of nodes || []) {
    const li = el("li", {}, el("b", { text: n.name }), " ", el("span", { class: "type", text: n.type }),
      n.interface ? el("span", { class: "iface", text: " " + n.interface }) : "",
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

function renderExporter(name) {
  const x = (lab.exporters || []).find((e) => e.name === name);
  const main = $("#main");
  if (!page || page.name !== name) {
    closePage();
    main.replaceChildren();
    page = { name, terms: {}, head: el("div", { id: "head" }) };
    main.append(el("p", {}, el("a", { href: "#/", text: "← all exporters" })), el("h2", { text: name }), page.head);
    const paths = consoles(x?.describe?.drivers);
    main.append(el("h3", { text: "Drivers" }), tree(x?.describe?.drivers));
    for (const p of paths) {
      const box = el("div", { class: "console", "data-path": p });
      main.append(el("h3", { text: "Console " + p }), box);
      const term = new Terminal({ scrollback: 5000, convertEol: false, fontSize: 13, rows: 24, cols: 100 });
      term.open(box);
      page.terms[p] = { term, box, end: -1, pending: [], live: false, text: "" };
      if (session.write) term.onData((d) => typeInto(name, p, d));
    }
    if (paths.length) attach(name, paths);
  }
  page.head.replaceChildren(
    el("span", { class: "state " + (x?.online ? "ok" : "bad"), text: x ? (x.online ? "online" : "offline") : "unknown exporter" }), " ",
    ...labels(x?.labels), " ",
    el("span", { class: "holder", text: x?.holder ? "leased by " + x.holder + (x.end ? " (" + left(x.end) + " left)" : "") : "free" }),
    x?.power ? el("span", { class: "power", text: " power: " + x.power }) : "");
}

// attach subscribes to the exporter's taps, then asks for each console's history (the reply
// comes on a subject under the same wildcard) and writes history first, then the live bytes past
// its end offset: no gap, no duplicate.
function attach(name, paths) {
  const pre = `jsn.tap.${name}.`;
  const tokens = {};
  page.sub = nc.subscribe(pre + ">", {
    callback: (err, m) => {
      if (err || !page || page.name !== name) return;
      const rest = m.subject.slice(pre.length);
      if (rest.startsWith("~history.")) {
        const p = tokens[rest.slice(9)];
        if (p) gotHistory(p, m);
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

function typeInto(name, path, d) {
  nc.publish(session.write.replace("{path}", path), enc.encode(d));
}

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

// The signpost dashboard. Everything it shows comes from this admin endpoint:
// GET /status, /metrics and /v1/transitions every 2 s, /explain on demand,
// POST /v1/override from the drain buttons, /v1/dial and /v1/ramp from the
// dial and ramp controls; map.js adds the world map (GET /v1/map). Strings
// from the server go into the page as text nodes only (no markup is built
// from data).
"use strict";

(function () {
  const REFRESH_MS = 2000;
  // The bearer token: in this variable only, never in storage or a cookie, so
  // closing or reloading the page forgets it.
  let token = "";
  // False once a change was refused (401): the buttons are hidden.
  let canChange = true;
  // The previous scrape of /metrics, for rates: { at: ms, counters: Map }.
  let previous = null;
  let busy = false;
  // Panels of other files (map.js): each called with /status after a refresh,
  // and with null when the endpoint refuses the token (to show nothing).
  const panels = [];

  const $ = (id) => document.getElementById(id);

  // An element with text children; attributes set as properties or data-*.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k.startsWith("data-")) e.setAttribute(k, v);
      else if (k === "class") e.className = v;
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function table(head, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, ...head.map((h) => el("th", {}, h)))),
      el("tbody", {}, ...rows));
  }

  function message(text, kind) {
    const m = $("message");
    m.textContent = text || "";
    m.className = kind || "";
    m.hidden = !text;
  }

  async function call(method, path) {
    // A header no page of another site can send without a preflight, which the
    // endpoint refuses: without a token, a change needs it.
    const headers = { "X-Signpost-Request": "1" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const r = await fetch(path, { method, headers, cache: "no-store" });
    return { status: r.status, body: await r.text() };
  }

  function clock(secs) {
    if (!secs) return "—";
    return new Date(secs * 1000).toISOString().slice(11, 19) + " UTC";
  }

  function ago(secs) {
    if (!secs) return "never";
    const d = Math.max(0, Math.round(Date.now() / 1000 - secs));
    return d < 120 ? d + " s ago" : Math.round(d / 60) + " min ago";
  }

  // What an operator calls an endpoint's state.
  function health(e) {
    switch (e.override) {
      case "drain": return ["drained", "drained"];
      case "force-up": return ["forced up", "forced"];
      case "force-down": return ["forced down", "forced"];
    }
    return e.up ? ["up", "up"] : ["down", "down"];
  }

  function overrideButtons(target, current) {
    if (!canChange) return null;
    const drained = current === "drain";
    return el("span", { class: "buttons" },
      el("button", {
        type: "button", textContent: "Drain", disabled: drained,
        "data-target": target, "data-action": "drain",
      }),
      el("button", {
        type: "button", textContent: "Undrain", disabled: !drained,
        "data-target": target, "data-action": "undrain",
      }));
  }

  // Dial percents typed but not yet set, by target: the regions are drawn again
  // every refresh, and what the operator typed must survive it.
  const drafts = new Map();

  // A region's traffic dial: the percent shown, and (with rights) a field and
  // a button that POST /v1/dial.
  function dialControl(target, percent) {
    const shown = el("span", { class: "badge" + (percent < 100 ? " forced" : ""), "data-dial": String(percent) },
      "dial " + percent + "%");
    if (!canChange) return shown;
    return el("span", { class: "buttons" }, shown,
      el("input", {
        type: "number", min: "0", max: "100", value: drafts.get(target) ?? String(percent),
        title: "dial percent for " + target, "data-dial-input": target,
      }),
      el("button", { type: "button", textContent: "Set dial", "data-dial-target": target }));
  }

  // Each ramp's changes this page has seen (phase, dial), newest first: /status
  // has only the ramp's present, so the history starts when the page loads.
  const rampHistory = new Map();
  const HISTORY = 12;

  function noteRamp(target, r) {
    const seen = rampHistory.get(target) || { last: "", lines: [] };
    const now = r.phase + " at " + r.dial + "%" + (r.failed_gate ? " (" + r.failed_gate + ")" : "");
    if (seen.last !== now) {
      seen.lines.unshift(new Date().toISOString().slice(11, 19) + " " + now);
      seen.lines.length = Math.min(seen.lines.length, HISTORY);
      seen.last = now;
    }
    rampHistory.set(target, seen);
    return seen.lines;
  }

  function secs(ms) {
    const s = Math.ceil(ms / 1000);
    return s < 120 ? s + " s" : Math.floor(s / 60) + " min " + (s % 60) + " s";
  }

  // What the ramp's gates say now: failed names the gate; a running ramp's
  // hold counts only while every gate holds (an unknown verdict restarts it).
  function gateCell(r) {
    if (r.phase === "failed") return el("span", { class: "fail" }, "failed: " + (r.failed_gate || "a gate"));
    if (r.phase !== "running") return el("span", { class: "muted" }, r.phase);
    if (r.next_step === null || r.next_step === undefined) return el("span", { class: "ok" }, "holding the last step");
    return el("span", { class: r.held_ms > 0 ? "ok" : "muted" },
      r.held_ms > 0 ? "holding" : "waiting for the gates",
      " · " + secs(Math.max(0, r.hold_ms - r.held_ms)) + " to " + r.next_step + "%");
  }

  function rampButtons(target, r) {
    if (!canChange) return null;
    const allowed = { pause: r.phase === "running", resume: r.phase === "paused", abort: r.phase === "running" || r.phase === "paused" };
    return el("span", { class: "buttons" },
      ...["pause", "resume", "abort"].map((a) => el("button", {
        type: "button", textContent: a[0].toUpperCase() + a.slice(1), disabled: !allowed[a],
        "data-ramp-target": target, "data-ramp-action": a,
      })));
  }

  // Every ramp: its steps (the dial in force underlined), phase, gates, time
  // left, what this page saw of it, and its pause, resume and abort buttons.
  function renderRamps(st) {
    const ramps = (st.ramps || {}).ramps || {};
    const rows = Object.entries(ramps).sort().map(([target, r]) => {
      const steps = el("span", {}, ...r.steps.flatMap((s, i) => [
        i ? " → " : "",
        el("span", { class: s === r.dial ? "step current" : (s <= r.safe ? "step held" : "step") }, s + "%"),
      ]));
      return el("tr", { "data-ramp": target, "data-phase": r.phase },
        el("td", { class: "key" }, target),
        el("td", {}, el("span", { class: "badge " + r.phase }, r.phase)),
        el("td", {}, steps),
        el("td", { class: "num" }, r.dial + "%"),
        el("td", {}, gateCell(r)),
        el("td", { class: "num" }, r.time_left_ms ? secs(r.time_left_ms) : "—"),
        el("td", { class: "history" }, ...noteRamp(target, r).map((l) => el("div", {}, l))),
        el("td", {}, rampButtons(target, r)));
    });
    rampForm(st);
    const failures = (st.ramps || {}).failures || 0;
    $("ramps").replaceChildren(rows.length
      ? table(["target", "phase", "steps", "dial", "gates", "time left", "seen here", ""], rows)
      : el("p", { class: "muted" }, "no ramp (signpost ctl ramp REGION --to 100 --steps 1,5,25,50,100 --hold 10m, or the form below)"),
      failures ? el("p", { class: "muted" }, failures + " ramp(s) stopped by a gate since start") : "");
  }

  // The start form: the regions to choose from (kept while they are the
  // same, so a choice survives the refresh), shown with rights only.
  function rampForm(st) {
    const targets = [...new Set((st.endpoints || []).map((e) => "region:" + (e.region || "")))].sort();
    const pick = $("ramp-target");
    if ([...pick.options].map((o) => o.value).join(" ") !== targets.join(" ")) {
      const had = pick.value;
      pick.replaceChildren(...targets.map((t) => el("option", { value: t, textContent: t })));
      if (targets.includes(had)) pick.value = had;
    }
    $("ramp-start").hidden = !canChange || targets.length === 0;
  }

  async function startRamp() {
    const steps = $("ramp-steps").value.trim();
    const q = new URLSearchParams({
      target: $("ramp-target").value,
      to: steps.split(",").pop().trim().replace(/%$/, ""),
      steps, hold: $("ramp-hold").value.trim(), on_fail: $("ramp-on-fail").value,
    });
    report("ramp " + q.get("target") + " started", await call("POST", "/v1/ramp?" + q.toString()));
    await refresh();
  }

  // A change's reply on the message line; a 401 hides the controls that change.
  function report(what, r) {
    if (r.status === 401) {
      canChange = false;
      message("this token may not make changes (401): the buttons are hidden", "error");
    } else if (r.status !== 200) {
      message(what + ": " + r.status + " " + r.body, "error");
    } else {
      message(what + ": done", "");
    }
  }

  async function rampAction(target, action) {
    const q = new URLSearchParams({ target, action });
    report("ramp " + action + " " + target, await call("POST", "/v1/ramp?" + q.toString()));
    await refresh();
  }

  function probeCell(keys, byKey) {
    const cell = el("td", { class: "probe" });
    if (!keys || keys.length === 0) {
      cell.append(el("span", { class: "muted" }, "no check"));
      return cell;
    }
    for (const k of keys) {
      const t = byKey.get(k);
      const p = t && t.last_probe;
      const line = el("div", { title: k });
      if (!p) {
        line.append(el("span", { class: "muted" }, "not probed yet"));
      } else {
        line.append(
          el("span", { class: p.ok ? "ok" : "fail" }, p.ok ? "pass" : "fail"), " ",
          p.detail, " · ", p.latency_ms.toFixed(1) + " ms · ",
          el("time", {}, clock(t.last_probe_at)), " (" + ago(t.last_probe_at) + ")");
      }
      cell.append(line);
    }
    return cell;
  }

  function renderRegions(st) {
    const byKey = new Map((st.targets || []).map((t) => [t.target, t]));
    const regions = new Map();
    for (const e of st.endpoints || []) {
      const r = e.region || "";
      if (!regions.has(r)) regions.set(r, []);
      regions.get(r).push(e);
    }
    const overrides = st.overrides || {};
    const out = [];
    for (const [region, list] of [...regions.entries()].sort()) {
      const target = "region:" + region;
      const up = list.filter((e) => e.up).length;
      const rows = list.map((e) => {
        const [label, cls] = health(e);
        const own = overrides[e.endpoint];
        return el("tr", { "data-endpoint": e.endpoint },
          el("td", {}, e.name || e.endpoint),
          el("td", {}, el("span", { class: "badge " + cls, "data-health": label }, label)),
          el("td", { class: "num" }, e.weight),
          el("td", { class: "num" }, (e.dial === undefined ? 100 : e.dial) + "%"),
          probeCell(e.targets, byKey),
          el("td", {}, overrideButtons(e.endpoint, own)));
      });
      const ro = overrides[target];
      out.push(el("article", { class: "region", "data-region": region },
        el("h3", {}, region, " ",
          el("span", { class: "muted" }, up + "/" + list.length + " up"),
          ro ? el("span", { class: "badge " + (ro === "drain" ? "drained" : "forced") }, ro) : null,
          overrideButtons(target, ro),
          dialControl(target, (st.region_dials || {})[target] ?? 100)),
        table(["name", "health", "weight", "dial", "last probe", "endpoint"], rows)));
    }
    const typing = document.activeElement?.getAttribute("data-dial-input");
    $("regions").replaceChildren(...(out.length ? out : [el("p", { class: "muted" }, "no steered names")]));
    if (typing) document.querySelector("input[data-dial-input='" + CSS.escape(typing) + "']")?.focus();
  }

  function renderZones(st) {
    const rows = (st.zones || []).map((z) => el("tr", {},
      el("td", {}, z.origin), el("td", { class: "num" }, z.serial),
      el("td", {}, (z.steered_names || []).join(" "))));
    $("zones").replaceChildren(table(["zone", "serial", "steered names"], rows));
  }

  function renderTransitions(list) {
    const rows = list.map((t) => el("tr", {},
      el("td", {}, clock(t.at)), el("td", { class: "key" }, t.target),
      el("td", {}, t.from, " → ", t.to), el("td", {}, t.reason)));
    $("transitions").replaceChildren(rows.length
      ? table(["time", "target", "change", "reason"], rows)
      : el("p", { class: "muted" }, "none since start"));
  }

  // Prometheus text format: name{labels} value. Only the lines we sum.
  function counters(text) {
    const sums = new Map();
    const add = (k, v) => sums.set(k, (sums.get(k) || 0) + v);
    for (const line of text.split("\n")) {
      const m = /^(signpost_steered_answers_total|signpost_queries_total)\{(.*)\} (\S+)$/.exec(line);
      if (!m) continue;
      const labels = {};
      for (const p of m[2].matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[p[1]] = p[2];
      const v = Number(m[3]);
      if (m[1] === "signpost_queries_total") {
        add("all", v);
        add("rcode\u0000" + labels.rcode, v);
      } else {
        add("region\u0000" + labels.region, v);
        add("reason\u0000" + labels.reason, v);
      }
    }
    return sums;
  }

  function renderRates(text) {
    const now = { at: Date.now(), counters: counters(text) };
    const before = previous;
    previous = now;
    if (!before) return;
    const dt = (now.at - before.at) / 1000;
    if (dt <= 0) return;
    const groups = { region: [], reason: [], rcode: [] };
    let total = 0;
    for (const [k, v] of now.counters) {
      // A counter that went back (a restart) counts from zero.
      const was = before.counters.get(k) || 0;
      const rate = (v >= was ? v - was : v) / dt;
      if (k === "all") { total = rate; continue; }
      const [kind, label] = k.split("\u0000");
      groups[kind].push([label || "—", rate]);
    }
    const block = (title, list) => {
      list.sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
      return el("div", { class: "rates", "data-rates": title },
        table([title, "per s"], list.map(([l, r]) =>
          el("tr", {}, el("td", {}, l), el("td", { class: "num" }, r.toFixed(1))))));
    };
    $("rates").replaceChildren(
      el("p", {}, "all queries: ", el("strong", {}, total.toFixed(1)), " per s"),
      block("region", groups.region), block("reason", groups.reason), block("rcode", groups.rcode));
  }

  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const st = await call("GET", "/status");
      if (st.status === 401) {
        message(token ? "the token was refused (401): log in again" : "this endpoint needs a token: log in", "warn");
        $("summary").textContent = "not logged in";
        $("regions").replaceChildren(el("p", { class: "muted" }, "log in to see the regions"));
        $("ramps").replaceChildren();
        $("ramp-start").hidden = true;
        await Promise.all(panels.map((p) => p(null).catch(() => {})));
        return;
      }
      if (st.status !== 200) {
        message("GET /status: " + st.status + " " + st.body, "warn");
        return;
      }
      const s = JSON.parse(st.body);
      renderRegions(s);
      renderRamps(s);
      renderZones(s);
      $("summary").textContent = "generation " + s.generation + " · loaded " + clock(s.loaded_at) +
        " · refreshed " + new Date().toISOString().slice(11, 19) + " UTC";
      const [m, t] = await Promise.all([call("GET", "/metrics"), call("GET", "/v1/transitions")]);
      if (m.status === 200) renderRates(m.body);
      if (t.status === 200) renderTransitions(JSON.parse(t.body).transitions || []);
      await Promise.all(panels.map((p) => p(s).catch((e) => message(String(e), "warn"))));
      if (!canChange) return;
      if ($("message").className !== "error") message("");
    } catch (err) {
      message("cannot reach the admin endpoint: " + err, "warn");
    } finally {
      busy = false;
    }
  }

  async function change(target, action) {
    const q = new URLSearchParams({ target, action });
    const r = await call("POST", "/v1/override?" + q.toString());
    if (r.status === 401) {
      canChange = false;
      message("this token may not change overrides (401): the buttons are hidden", "error");
    } else if (r.status !== 200) {
      message(action + " " + target + ": " + r.status + " " + r.body, "error");
    } else {
      message(action + " " + target + ": done", "");
    }
    await refresh();
  }

  async function setDial(target, percent) {
    const q = new URLSearchParams({ target, percent });
    report("dial " + target + " " + percent + "%", await call("POST", "/v1/dial?" + q.toString()));
    await refresh();
  }

  document.addEventListener("click", (ev) => {
    const b = ev.target.closest("button[data-action]");
    if (b) change(b.getAttribute("data-target"), b.getAttribute("data-action"));
    const ra = ev.target.closest("button[data-ramp-action]");
    if (ra) rampAction(ra.getAttribute("data-ramp-target"), ra.getAttribute("data-ramp-action"));
    const d = ev.target.closest("button[data-dial-target]");
    if (d) {
      const target = d.getAttribute("data-dial-target");
      const input = d.parentElement.querySelector("input[data-dial-input]");
      drafts.delete(target);
      setDial(target, input ? input.value : "100");
    }
  });

  document.addEventListener("input", (ev) => {
    const t = ev.target.getAttribute && ev.target.getAttribute("data-dial-input");
    if (t) drafts.set(t, ev.target.value);
  });

  $("ramp-start").addEventListener("submit", (ev) => {
    ev.preventDefault();
    startRamp();
  });

  $("login").addEventListener("submit", (ev) => {
    ev.preventDefault();
    token = $("token").value;
    $("token").value = "";
    canChange = true;
    $("logout").hidden = !token;
    $("summary").textContent = "logging in…";
    refresh();
  });

  $("logout").addEventListener("click", () => {
    token = "";
    $("logout").hidden = true;
    refresh();
  });

  $("explain").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams({
      name: $("explain-name").value,
      type: $("explain-type").value,
      client: $("explain-client").value,
    });
    const r = await call("GET", "/explain?" + q.toString());
    $("explain-out").textContent = (r.status === 200 ? "" : r.status + ": ") + r.body;
  });

  // What a panel in a file of its own uses: the calls with the token, the
  // element helpers, and a place in each refresh.
  window.signpost = Object.freeze({
    call, el, table, message,
    // f(status) after every refresh; f(null) when logged out.
    panel: (f) => { panels.push(f); },
  });

  // The scripts after this one at the end of the body (map.js) run before
  // DOMContentLoaded, so their panels are in place for the first refresh.
  window.addEventListener("DOMContentLoaded", () => {
    refresh();
    setInterval(refresh, REFRESH_MS);
  });
})();

// The dashboard's measured-latency panel: GET /v1/latency/matrix at each refresh,
// drawn as a table of client areas (rows) by regions (columns): each cell the
// measured figure (ms, samples, senders, age, source) or "estimated", and a
// last row with how many networks each region wins. Strings from the server go
// into the page as text nodes only. It is a panel of the main script's
// (window.signpost.panel): its calls carry the main script's token, and a
// logout empties it.
"use strict";

(function () {
  const S = window.signpost;
  const $ = (id) => document.getElementById(id);

  function el(tag, cls, ...children) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function cell(c) {
    if (!c || c.estimated) return el("td", "muted", "estimated");
    const td = el("td", "measured", c.ms + " ms");
    td.title = c.samples + " samples, " + c.senders + " senders, " +
      (c.age_s === null ? "?" : c.age_s + " s old") + ", " + c.source;
    td.append(el("br"), el("small", "muted", c.samples + " / " + c.source));
    return td;
  }

  function draw(m) {
    const out = $("latency-matrix");
    out.replaceChildren();
    if (!m.networks) {
      out.append(el("p", "muted", "no measured networks yet"));
      return;
    }
    const head = el("tr", null, el("th", null, "area"), el("th", null, "networks"),
      ...m.regions.map((r) => el("th", null, r)));
    const rows = m.areas.map((a) =>
      el("tr", null, el("td", null, a.area), el("td", null, a.networks),
        ...a.cells.map(cell)));
    const wins = el("tr", "wins", el("th", null, "networks won"), el("td", null, m.networks),
      ...m.regions.map((r) => el("td", null, m.wins[r] || 0)));
    out.append(el("table", null, el("thead", null, head), el("tbody", null, ...rows, wins)));
    if (m.areas_total > m.areas.length) {
      out.append(el("p", "muted", m.areas.length + " of " + m.areas_total + " areas (most samples first)"));
    }
  }

  async function update(st) {
    if (!st) {
      $("latency-matrix").replaceChildren();
      return;
    }
    const r = await S.call("GET", "/v1/latency/matrix");
    if (r.status === 200) draw(JSON.parse(r.body));
  }

  S.panel(update);
})();

// The dashboard's world map: each country filled with the colour of the region
// its clients get now for the steered name picked above the map, from
// GET /v1/map?name= on every refresh (so drains, health, dials and ramps show
// within one refresh). The outlines are /world.json (Natural Earth, public
// domain; scripts/world-map.py), fetched once. A country whose networks a dial
// splits is drawn in its larger share's colour, paler the smaller that share.
"use strict";

(function () {
  const S = window.signpost;
  // Distinct colours, given to the name's regions in their configured order.
  const PALETTE = ["#1f77b4", "#e8730c", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#5f6b7a"];
  const NONE = "#c9ced6";
  // The legend's key for "no answer" (NODATA or SERVFAIL): no region is "".
  const NO_ANSWER = "";
  let world = null; // { width, height, countries: { CC: path } }
  const shapes = new Map(); // CC -> <path>

  const $ = (id) => document.getElementById(id);

  // The <svg> of index.html: the HTML parser puts it in SVG's namespace, which
  // the paths made here take from it.
  function svg(tag, attrs) {
    const e = document.createElementNS($("world").namespaceURI, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
    return e;
  }

  async function outlines() {
    if (world) return world;
    const r = await fetch("/world.json", { cache: "force-cache" });
    if (!r.ok) throw new Error("GET /world.json: " + r.status);
    world = await r.json();
    const box = $("world");
    box.setAttribute("viewBox", "0 0 " + world.width + " " + world.height);
    for (const [cc, d] of Object.entries(world.countries)) {
      const p = svg("path", { d, fill: NONE, "data-country": cc });
      p.append(svg("title"));
      shapes.set(cc, p);
      box.append(p);
    }
    return world;
  }

  // The steered names of /status in the picker, keeping the operator's pick.
  function names(st) {
    const pick = $("map-name");
    const all = (st.zones || []).flatMap((z) => z.steered_names || []);
    const had = pick.value;
    if (pick.options.length !== all.length || all.some((n, i) => pick.options[i].value !== n)) {
      pick.replaceChildren(...all.map((n) => S.el("option", { value: n, textContent: n })));
      if (all.includes(had)) pick.value = had;
    }
    return pick.value;
  }

  function colours(regions) {
    const c = new Map(regions.map((r, i) => [r, PALETTE[i % PALETTE.length]]));
    c.set(NO_ANSWER, NONE);
    return c;
  }

  function legend(regions, colour, counts) {
    const items = [...regions, NO_ANSWER].filter((r) => r !== NO_ANSWER || counts.get(NO_ANSWER))
      .map((r) => {
        const swatch = S.el("span", { class: "swatch" });
        swatch.style.background = colour.get(r);
        return S.el("li", { "data-legend": r }, swatch, r === NO_ANSWER ? "no answer" : r,
          S.el("span", { class: "muted" }, " " + (counts.get(r) || 0)));
      });
    $("map-legend").replaceChildren(...items);
  }

  async function update(st) {
    if (!st) {
      // Logged out: no colours, no names, nothing from before.
      for (const p of shapes.values()) {
        p.setAttribute("fill", NONE);
        p.removeAttribute("data-steered-to");
      }
      $("map-name").replaceChildren();
      $("map-legend").replaceChildren();
      $("map-note").textContent = "log in to see the map";
      return;
    }
    const name = names(st);
    if (!name) {
      $("map-note").textContent = "no steered names";
      return;
    }
    await outlines();
    const r = await S.call("GET", "/v1/map?" + new URLSearchParams({ name }).toString());
    if (r.status !== 200) {
      $("map-note").textContent = "GET /v1/map: " + r.status + " " + r.body;
      return;
    }
    const m = JSON.parse(r.body);
    const colour = colours(m.regions || []);
    const counts = new Map();
    for (const [cc, p] of shapes) {
      const c = (m.countries || {})[cc];
      const region = (c && c.region) || NO_ANSWER;
      counts.set(region, (counts.get(region) || 0) + 1);
      const share = !c || !c.shares ? 1 : (region === NO_ANSWER ? c.no_answer : c.shares[region]);
      p.setAttribute("fill", colour.get(region) || NONE);
      p.setAttribute("fill-opacity", String(0.35 + 0.65 * share));
      p.setAttribute("data-steered-to", region);
      const pct = (v) => " " + Math.round(v * 100) + "%";
      const split = c && c.shares
        ? Object.entries(c.shares).map(([k, v]) => k + pct(v))
          .concat(c.no_answer ? ["no answer" + pct(c.no_answer)] : []).join(", ")
        : region || "no answer";
      p.firstChild.textContent = cc + ": " + split;
    }
    legend(m.regions || [], colour, counts);
    $("map-note").textContent = "clients of each country (at its centroid, " + m.samples +
      " networks) for " + m.name + ", as of " + new Date().toISOString().slice(11, 19) + " UTC";
  }

  S.panel(update);
})();

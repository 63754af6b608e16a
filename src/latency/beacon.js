// signpost's real-user beacon. After the page has loaded, it fetches a small
// object from each region a few times, reads each fetch's Resource Timing entry,
// and posts one round trip per region to the collector this script came from:
// {"v":1,"samples":[{"region":"eu-west","rtt_ms":42.5},...]}. Nothing else is
// read or sent; no cookies (credentials: "omit").
(function () {
  "use strict";
  var config = __SIGNPOST_CONFIG__;
  var state = (window.signpostBeacon = { done: false, samples: null, status: null });
  if (!window.fetch || !window.performance || !performance.getEntriesByName || !window.URL) {
    state.done = true;
    return;
  }
  var me = document.currentScript && document.currentScript.src;
  var collector = new URL("/v1/beacon", me || location.href).href;

  function bust(url) {
    var u = new URL(url, location.href);
    u.searchParams.set("signpost", Math.random().toString(36).slice(2));
    return u.href;
  }

  // One fetch: the request-to-first-byte time where the region sends
  // Timing-Allow-Origin, else the entry's whole duration.
  function once(url) {
    var u = bust(url);
    var t0 = performance.now();
    return fetch(u, { mode: "no-cors", cache: "no-store", credentials: "omit" })
      .then(function (r) {
        return r.arrayBuffer().catch(function () {});
      })
      .then(
        function () {
          var t1 = performance.now();
          var all = performance.getEntriesByName(u);
          var e = all.length ? all[all.length - 1] : null;
          if (e && e.requestStart > 0 && e.responseStart >= e.requestStart) {
            return e.responseStart - e.requestStart;
          }
          if (e && e.duration > 0) return e.duration;
          return t1 - t0;
        },
        function () {
          return null;
        }
      );
  }

  // A region's figure: the least of its fetches after the first (which pays
  // for the name lookup and the connection).
  function region(r) {
    var times = [];
    var chain = Promise.resolve();
    for (var k = 0; k < config.rounds; k++) {
      chain = chain.then(function () {
        return once(r.url).then(function (t) {
          if (t !== null) times.push(t);
        });
      });
    }
    return chain.then(function () {
      var warm = times.length > 1 ? times.slice(1) : times;
      if (!warm.length) return null;
      var ms = Math.min.apply(null, warm);
      return { region: r.name, rtt_ms: Math.max(0.1, Math.round(ms * 10) / 10) };
    });
  }

  function run() {
    var samples = [];
    var chain = Promise.resolve();
    config.regions.forEach(function (r) {
      chain = chain.then(function () {
        return region(r).then(function (s) {
          if (s) samples.push(s);
        });
      });
    });
    chain
      .then(function () {
        state.samples = samples;
        if (!samples.length) return null;
        return fetch(collector, {
          method: "POST",
          mode: "cors",
          credentials: "omit",
          keepalive: true,
          headers: { "Content-Type": "text/plain" },
          body: JSON.stringify({ v: 1, samples: samples }),
        }).then(function (resp) {
          state.status = resp.status;
        });
      })
      .catch(function () {})
      .then(function () {
        state.done = true;
      });
  }

  if (document.readyState === "complete") setTimeout(run, 0);
  else window.addEventListener("load", function () { setTimeout(run, 0); });
})();

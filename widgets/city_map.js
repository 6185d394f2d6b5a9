// The wall's live layers on the Leaflet map. Python calls cw.update(patch) at most a few
// times a second with the records that changed, and cw.setNow(ms) once a second with the
// situation's clock: the page never reads its own clock, and is never reloaded.
// Text from the feed (callsigns, ids) only ever goes into textContent, never into HTML.
(function () {
  "use strict";
  var map = window.__CW_MAP__;
  // Panes, bottom to top: districts (overlay pane), the heat raster, the live markers.
  map.createPane("cwHeat").style.zIndex = 450;
  map.getPane("cwHeat").style.pointerEvents = "none";
  var renderer = L.canvas({ padding: 0.3, pane: "markerPane" });
  var STALE_MS = 60000;
  var UNIT_COLOUR = { available: "#22c55e", dispatched: "#38bdf8", en_route: "#38bdf8",
                      on_scene: "#f59e0b", returning: "#94a3b8", off_duty: "#475569",
                      out_of_service: "#475569" };
  var PRIORITY_COLOUR = { 1: "#f97316", 2: "#facc15", 3: "#a5b4fc" };
  var LEVEL_COLOUR = { "-1": "#94a3b8", 0: "#22c55e", 1: "#f59e0b", 2: "#ef4444" };
  var OVERDUE = "#ef4444", STALE = "#64748b";

  var layers = {
    units: L.layerGroup().addTo(map),
    cases: L.layerGroup().addTo(map),
    sensors: L.layerGroup().addTo(map)
  };
  var markers = { units: {}, cases: {}, sensors: {} };
  var now = 0, follow = null, labelsOn = false, pulse = false;

  // The page may load before Qt has laid the view out: until the map has a size, Leaflet's
  // view is meaningless, so (re)fit the city when the first real size arrives.
  // Until someone moves the map (or asks it to show a case), it keeps the whole city in view
  // as the window is laid out and resized.
  var cityBounds = window.__CW_CITY__, viewed = false, auto = true;
  function ensureView() {
    map.invalidateSize({ animate: false });
    var size = map.getSize();
    if (size.x > 0 && size.y > 0 && (auto || !viewed)) {
      map.fitBounds(cityBounds, { animate: false });
      viewed = true;
    }
    return viewed;
  }
  window.addEventListener("resize", ensureView);
  map.on("dragstart", function () { auto = false; });
  map.getContainer().addEventListener("wheel", function () { auto = false; });
  map.zoomControl.getContainer().addEventListener("click", function () { auto = false; });
  ensureView();

  function text(s) {               // a DOM node holding s as text: never parsed as HTML
    var span = document.createElement("span");
    span.textContent = s;
    return span;
  }

  function unitStyle(u) {
    var stale = now - u.ts > STALE_MS;
    return { radius: 6, weight: 2, color: stale ? "#1e293b" : "#0b1220",
             fillColor: stale ? STALE : (UNIT_COLOUR[u.status] || "#e2e8f0"),
             fillOpacity: stale ? 0.5 : 0.95, renderer: renderer };
  }
  function caseStyle(c) {
    var late = c.due !== null && now > c.due;
    return { radius: late ? (pulse ? 11 : 8) : 7, weight: late ? 3 : 1.5,
             color: late ? "#fecaca" : "#0b1220",
             fillColor: late ? OVERDUE : (PRIORITY_COLOUR[c.priority] || "#e2e8f0"),
             fillOpacity: late ? (pulse ? 0.55 : 0.95) : 0.9, renderer: renderer };
  }
  function sensorStyle(s) {
    return { radius: s.level >= 2 ? 6 : 4, weight: 1, color: "#0b1220",
             fillColor: LEVEL_COLOUR[s.level] || "#94a3b8",
             fillOpacity: s.level >= 1 ? 0.95 : 0.6, renderer: renderer };
  }
  var STYLE = { units: unitStyle, cases: caseStyle, sensors: sensorStyle };

  function click(kind, id) {
    return function () { console.log("cw:click:" + JSON.stringify([kind, id])); };
  }

  function label(kind, m) {
    if (kind !== "units") return;
    if (labelsOn) {
      if (!m.getTooltip()) {
        m.bindTooltip(text(m.cw.callsign), { permanent: true, direction: "right",
                                             offset: [8, 0], className: "cw-label" });
      }
    } else if (m.getTooltip()) {
      m.unbindTooltip();
    }
  }

  function upsert(kind, rec) {
    var m = markers[kind][rec.id];
    if (m === undefined) {
      m = L.circleMarker([rec.lat, rec.lon], STYLE[kind](rec));
      m.cw = rec;
      m.on("click", click(kind, rec.id));
      m.addTo(layers[kind]);
      markers[kind][rec.id] = m;
    } else {
      m.cw = rec;
      m.setLatLng([rec.lat, rec.lon]);
      m.setStyle(STYLE[kind](rec));
    }
    label(kind, m);
  }

  function remove(kind, id) {
    var m = markers[kind][id];
    if (m !== undefined) {
      layers[kind].removeLayer(m);
      delete markers[kind][id];
    }
  }

  function restyle(kind) {
    var all = markers[kind];
    for (var id in all) all[id].setStyle(STYLE[kind](all[id].cw));
  }

  function keepFollowing() {
    if (follow === null) return;
    var m = markers[follow[0]][follow[1]];
    if (m !== undefined) map.panTo(m.getLatLng(), { animate: false });
  }

  map.on("zoomend", function () {
    var on = map.getZoom() >= 14;
    if (on === labelsOn) return;
    labelsOn = on;
    for (var id in markers.units) label("units", markers.units[id]);
  });
  map.on("dragstart", function () { follow = null; });

  // What the map shows, told to Qt through the console as it changes (after each move or zoom,
  // and on a resize): the wall's status file reads the last report, never the page itself.
  // A map with no size yet shows nothing: no report until it has one.
  function reportView() {
    var size = map.getSize();
    if (!(size.x > 0 && size.y > 0)) return;
    var c = map.getCenter(), b = map.getBounds();
    console.log("cw:view:" + JSON.stringify({
      center: [c.lat, c.lng], zoom: map.getZoom(),
      bounds: [[b.getSouth(), b.getWest()], [b.getNorth(), b.getEast()]]
    }));
  }
  map.on("moveend", reportView);
  reportView();

  window.cw = {
    layers: layers,
    update: function (patch) {
      var t0 = performance.now();
      if (patch.now) now = patch.now;
      ["units", "cases", "sensors"].forEach(function (kind) {
        (patch[kind] || []).forEach(function (rec) { upsert(kind, rec); });
        ((patch.removed || {})[kind] || []).forEach(function (id) { remove(kind, id); });
      });
      keepFollowing();
      return performance.now() - t0;
    },
    setNow: function (ms) {
      var t0 = performance.now();
      now = ms;
      pulse = !pulse;
      restyle("units");
      restyle("cases");
      return performance.now() - t0;
    },
    clear: function () {
      ["units", "cases", "sensors"].forEach(function (kind) {
        layers[kind].clearLayers();
        markers[kind] = {};
      });
    },
    count: function () {
      return { units: Object.keys(markers.units).length,
               cases: Object.keys(markers.cases).length,
               sensors: Object.keys(markers.sensors).length };
    },
    ready: function () { return ensureView(); },
    zoomTo: function (kind, id, zoom) {
      ensureView();
      auto = false;
      var m = markers[kind][id];
      if (m === undefined) return false;
      map.setView(m.getLatLng(), zoom || 16, { animate: false });
      return true;
    },
    follow: function (kind, id) {
      ensureView();
      if (kind !== null) auto = false;
      follow = (kind === null) ? null : [kind, id];
      keepFollowing();
      return follow !== null && markers[kind][id] !== undefined;
    },
    following: function () { return follow; },
    wholeCity: function () { auto = true; follow = null; return ensureView(); },
    caseNear: function (x, y, px) {       // the case marker nearest a point of the view
      var best = "", bestD = px;
      for (var id in markers.cases) {
        var p = map.latLngToContainerPoint(markers.cases[id].getLatLng());
        var d = Math.sqrt((p.x - x) * (p.x - x) + (p.y - y) * (p.y - y));
        if (d <= bestD) { best = id; bestD = d; }
      }
      return best;
    },
    viewBounds: function () {
      var b = map.getBounds();
      return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()];
    },
    centre: function () { var c = map.getCenter(); return [c.lat, c.lng, map.getZoom()]; },
    show: function (kind, on) {
      if (on) layers[kind].addTo(map); else map.removeLayer(layers[kind]);
    },
    overlay: null,
    setOverlay: function (url, south, west, north, east, legendHtml) {
      if (cw.overlay) { map.removeLayer(cw.overlay); cw.overlay = null; }
      if (url) {
        cw.overlay = L.imageOverlay(url, [[south, west], [north, east]],
                                    { opacity: 0.8, interactive: false, pane: "cwHeat" })
          .addTo(map);
      }
    }
  };
})();

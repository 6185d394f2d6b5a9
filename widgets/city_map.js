// The wall's live layers on the Leaflet map. Python calls cw.update(patch) at most a few
// times a second with the records that changed, and cw.setNow(ms) once a second with the
// situation's clock: the page never reads its own clock, and is never reloaded.
// Text from the feed (callsigns, ids) only ever goes into textContent, never into HTML.
// Every colour comes from Python (window.__CW_CONFIG__.colours: the palette in use); this file
// spells none.
(function () {
  "use strict";
  var map = window.__CW_MAP__;
  var CFG = window.__CW_CONFIG__;
  var C = CFG.colours, SIZE = CFG.sizes, WORDS = CFG.words;
  var scale = 1;
  // Panes, bottom to top: districts (overlay pane), the heat raster, the live markers.
  map.createPane("cwHeat").style.zIndex = 450;
  map.getPane("cwHeat").style.pointerEvents = "none";
  // The live markers draw on their own canvas above the heat; the names (district labels,
  // the marker pane) stay above them, haloed, so they read over a busy district.
  map.createPane("cwMarkers").style.zIndex = 500;
  var renderer = L.canvas({ padding: 0.3, pane: "cwMarkers" });
  var STALE_MS = CFG.staleMs, DUE_SOON_MS = CFG.dueSoonMs;
  var UNIT_COLOUR = { available: C.ready, dispatched: C.busy, en_route: C.busy,
                      returning: C.busy, on_scene: C.on_scene, off_duty: C.idle,
                      out_of_service: C.idle };
  var LEVEL_COLOUR = { "-1": C.sensor, 0: C.sensor, 1: C.warn, 2: C.alarm };

  // ---- shapes: a case is a diamond, a unit a circle, a sensor a triangle ------------------
  // Drawn on the canvas renderer (thousands of markers stay cheap); hit-testing is the
  // circle's (radius + tolerance), which covers each shape.
  L.Canvas.include({
    _cwShape: function (layer) {
      if (!this._drawing || layer._empty()) return;
      var p = layer._point, ctx = this._ctx, r = Math.max(Math.round(layer._radius), 1);
      var o = layer.options;
      if (o.ring) {                       // a ring around it: overdue, escalated
        ctx.beginPath();
        ctx.arc(p.x, p.y, r + o.ring, 0, 2 * Math.PI, false);
        ctx.globalAlpha = o.opacity;
        ctx.lineWidth = 3;
        ctx.strokeStyle = o.ringColor || o.fillColor;
        ctx.setLineDash([]);
        ctx.stroke();
      }
      ctx.beginPath();
      if (o.shape === "diamond") {
        ctx.moveTo(p.x, p.y - r); ctx.lineTo(p.x + r, p.y);
        ctx.lineTo(p.x, p.y + r); ctx.lineTo(p.x - r, p.y);
        ctx.closePath();
      } else if (o.shape === "triangle") {
        var h = r * 0.9;
        ctx.moveTo(p.x, p.y - r); ctx.lineTo(p.x + r, p.y + h);
        ctx.lineTo(p.x - r, p.y + h);
        ctx.closePath();
      } else {
        ctx.arc(p.x, p.y, r, 0, 2 * Math.PI, false);
      }
      this._fillStroke(ctx, layer);
    }
  });
  var ShapeMarker = L.CircleMarker.extend({
    options: { shape: "circle", ring: 0 },
    _updatePath: function () { this._renderer._cwShape(this); },
    _updateBounds: function () {
      var r = this._radius + (this.options.ring || 0) + 2, w = this._clickTolerance();
      var d = [r + w, r + w];
      this._pxBounds = new L.Bounds(this._point.subtract(d), this._point.add(d));
    }
  });

  var layers = {
    units: L.layerGroup().addTo(map),
    cases: L.layerGroup().addTo(map),
    sensors: L.layerGroup().addTo(map)
  };
  var markers = { units: {}, cases: {}, sensors: {} };
  var now = 0, follow = null, labelsOn = false, pulse = false, heatOn = false, ticks = 0;

  // ---- the default view: where the city's work is --------------------------------------
  // Until someone moves the map (or asks it to show a case), it shows the open cases and the
  // units — the middle 70 % of them in each direction (15–85 % quantiles), so a few far-out
  // records do not pull it out to the whole municipality — refitted as the window is laid
  // out and resized, and when the work moves. With too few records: the whole city.
  var cityBounds = L.latLngBounds(window.__CW_CITY__), viewed = false, auto = true;
  var held = cityBounds.pad(0.1);         // records outside this are held, never followed
  var fitted = null, fittedOnce = false;
  function quantile(sorted, q) {
    var i = (sorted.length - 1) * q, lo = Math.floor(i), hi = Math.ceil(i);
    return sorted[lo] + (sorted[hi] - sorted[lo]) * (i - lo);
  }
  function workBounds() {
    var lats = [], lons = [];
    ["cases", "units"].forEach(function (kind) {
      var all = markers[kind];
      for (var id in all) {
        var ll = all[id].getLatLng();
        if (kind === "units" && now - all[id].cw.ts > STALE_MS) continue;
        if (held.contains(ll)) { lats.push(ll.lat); lons.push(ll.lng); }
      }
    });
    if (lats.length < 3) return cityBounds;
    lats.sort(function (a, b) { return a - b; });
    lons.sort(function (a, b) { return a - b; });
    var lo = CFG.workQuantiles[0], hi = CFG.workQuantiles[1];
    var s = quantile(lats, lo), n = quantile(lats, hi);
    var w = quantile(lons, lo), e = quantile(lons, hi);
    var minLat = 0.03, minLon = 0.04;     // at least ~3 km either way
    if (n - s < minLat) { var ml = (n + s) / 2; s = ml - minLat / 2; n = ml + minLat / 2; }
    if (e - w < minLon) { var mo = (e + w) / 2; w = mo - minLon / 2; e = mo + minLon / 2; }
    var box = L.latLngBounds([[s, w], [n, e]]);
    // What must be seen is never a quantile's outlier: every overdue or escalated case in the
    // city is in the opening frame.
    for (var cid in markers.cases) {
      var cm = markers.cases[cid], cll = cm.getLatLng();
      if (held.contains(cll) && (caseState(cm.cw) === "late" || cm.cw.esc)) box.extend(cll);
    }
    return box.pad(0.08);
  }
  function resized() {              // tell Leaflet only when the box really changed (it
    var el = map.getContainer(), size = map.getSize();   // forgets its exact centre)
    if (el.clientWidth !== size.x || el.clientHeight !== size.y) {
      map.invalidateSize({ animate: false });
    }
  }
  function ensureView(refit) {
    resized();
    var size = map.getSize();
    if (size.x > 0 && size.y > 0 && (auto || !viewed)) {
      var target = workBounds();
      if (refit || !viewed || !fitted || !same(fitted, target)) {
        map.fitBounds(target, { animate: false });
        fitted = target;
      }
      viewed = true;
    }
    return viewed;
  }
  function same(a, b) {                   // within a fifth of the span: not worth a jump
    var dy = (a.getNorth() - a.getSouth()) * 0.2, dx = (a.getEast() - a.getWest()) * 0.2;
    return Math.abs(a.getNorth() - b.getNorth()) < dy && Math.abs(a.getSouth() - b.getSouth()) < dy
      && Math.abs(a.getEast() - b.getEast()) < dx && Math.abs(a.getWest() - b.getWest()) < dx;
  }
  window.addEventListener("resize", function () { ensureView(true); });
  map.on("dragstart", function () { auto = false; });
  map.getContainer().addEventListener("wheel", function () { auto = false; });
  map.zoomControl.getContainer().addEventListener("click", function () { auto = false; });

  function text(s) {               // a DOM node holding s as text: never parsed as HTML
    var span = document.createElement("span");
    span.textContent = s;
    return span;
  }

  // ---- styles ----------------------------------------------------------------------------
  function px(v) { return v * scale; }
  function unitStyle(u) {
    var stale = now - u.ts > STALE_MS;
    var st = { shape: "circle", radius: px(SIZE.unit), weight: 2, opacity: 1,
               color: C.marker_edge, fillColor: UNIT_COLOUR[u.status] || C.idle,
               fillOpacity: 0.95, renderer: renderer };
    if (stale) {                      // lost: a hollow red ring
      st.color = C.alarm; st.weight = 3; st.fillColor = C.bg; st.fillOpacity = 0.6;
    }
    if (heatOn) { st.fillOpacity *= 0.35; st.opacity = 0.35; st.radius = px(SIZE.unit * 0.7); }
    return st;
  }
  function caseState(c) {
    if (c.due !== null && c.due !== undefined && now > c.due) return "late";
    if (c.due !== null && c.due !== undefined && c.due - now <= DUE_SOON_MS) return "soon";
    if (c.priority === 1) return "urgent";
    return "open";
  }
  var picked = null, pickLines = L.layerGroup().addTo(map);
  function caseStyle(c) {
    var state = caseState(c);
    var fill = { late: C.alarm, soon: C.warn, urgent: C.urgent, open: C.case }[state];
    var r = state === "late" ? (pulse ? SIZE.case_pulse : SIZE.case_late)
      : state === "urgent" || c.esc ? SIZE.case_urgent : SIZE.case;
    var st = { shape: "diamond", radius: px(r), weight: 2, opacity: 1, color: C.marker_edge,
               fillColor: fill, fillOpacity: 0.95, renderer: renderer,
               ring: (state === "late" || c.esc) ? px(SIZE.ring) : 0,
               ringColor: state === "late" ? C.alarm : C.urgent };
    if (state === "late" && pulse) st.fillOpacity = 0.7;
    if (c.id === picked) { st.ring = px(SIZE.ring + 2); st.ringColor = C.accent; }
    if (heatOn && state !== "late") { st.fillOpacity = 0.4; st.opacity = 0.4; st.ring = 0; }
    return st;
  }
  function sensorStyle(s) {
    var r = s.level >= 2 ? SIZE.sensor_alarm : s.level === 1 ? SIZE.sensor_warn : SIZE.sensor;
    var st = { shape: "triangle", radius: px(r), weight: 1.5, opacity: 1, color: C.marker_edge,
               fillColor: LEVEL_COLOUR[s.level] || C.sensor,
               fillOpacity: s.level >= 1 ? 0.95 : 0.75, renderer: renderer };
    if (heatOn && s.level < 2) { st.fillOpacity = 0.25; st.opacity = 0.25; }
    return st;
  }
  var STYLE = { units: unitStyle, cases: caseStyle, sensors: sensorStyle };

  function click(kind, id) {
    return function () { console.log("cw:click:" + JSON.stringify([kind, id])); };
  }

  // Labels: a unit's callsign when zoomed in; an overdue or escalated case says so always
  // (hidden only where it would overlap another label: see declutter).
  function label(kind, m) {
    if (kind === "cases") {
      var state = caseState(m.cw), want = state === "late" || m.cw.esc;
      var words = state === "late" ? WORDS.overdue : WORDS.escalated;
      var tip = m.getTooltip();
      if (want && (!tip || m._cwWords !== words)) {
        if (tip) m.unbindTooltip();
        var node = text((m.cw.short || m.cw.id) + " " + words);
        m.bindTooltip(node, { permanent: true, direction: "right",
                              offset: [px(SIZE.case_pulse + 4), 0], className: "cw-alert" });
        m._cwWords = words;
        declutterSoon();
      } else if (!want && tip) {
        m.unbindTooltip();
        m._cwWords = null;
      }
      return;
    }
    if (kind !== "units") return;
    if (labelsOn) {
      if (!m.getTooltip()) {
        m.bindTooltip(text(m.cw.callsign), { permanent: true, direction: "right",
                                             offset: [px(SIZE.unit + 3), 0],
                                             className: "cw-label" });
      }
    } else if (m.getTooltip()) {
      m.unbindTooltip();
    }
  }

  function upsert(kind, rec) {
    var m = markers[kind][rec.id];
    if (m === undefined) {
      m = new ShapeMarker([rec.lat, rec.lon], STYLE[kind](rec));
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
      if (kind === "cases" && id === picked) unpick();
    }
  }

  function restyle(kind) {
    var all = markers[kind];
    for (var id in all) {
      all[id].setStyle(STYLE[kind](all[id].cw));
      if (kind === "cases") label(kind, all[id]);
    }
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
    declutterSoon();
  });
  map.on("dragstart", function () { follow = null; });

  // ---- names never overlap -----------------------------------------------------------------
  // After every move, zoom and resize: the overdue labels first, then the district names
  // (largest district first); a label that would overlap one already placed is hidden.
  function declutter() {
    var placed = [], shown = 0;
    var alerts = Array.prototype.slice.call(document.querySelectorAll(".leaflet-tooltip.cw-alert"));
    var names = Array.prototype.slice.call(document.querySelectorAll(".cw-district"));
    names.sort(function (a, b) { return (+a.dataset.rank) - (+b.dataset.rank); });
    var box = map.getContainer().getBoundingClientRect();
    // The map's own controls (zoom, overview, legend, scale…) come first: no name under them.
    Array.prototype.forEach.call(document.querySelectorAll(
      ".leaflet-control, #cw-legend"), function (el) {
        var r = el.getBoundingClientRect();
        if (r.width > 0 && el.style.display !== "none") placed.push(r);
      });
    var calls = Array.prototype.slice.call(document.querySelectorAll(".leaflet-tooltip.cw-label"));
    alerts.concat(names, calls).forEach(function (el) {
      el.classList.remove("cw-hidden");
      var target = el.classList.contains("cw-district") ? (el.firstElementChild || el) : el;
      var r = target.getBoundingClientRect();
      if (el.classList.contains("cw-label") && r.width === 0) return;
      var inView = r.right > box.left && r.left < box.right && r.bottom > box.top
        && r.top < box.bottom && r.width > 0;
      var clash = placed.some(function (q) {
        return r.left < q.right + 4 && q.left < r.right + 4 && r.top < q.bottom + 2
          && q.top < r.bottom + 2;
      });
      if (clash) { el.classList.add("cw-hidden"); return; }
      if (r.width > 0) placed.push(r);
      if (inView && el.classList.contains("cw-district")) shown += 1;
    });
    return shown;
  }
  var declutterPending = false;
  function declutterSoon() {
    if (declutterPending) return;
    declutterPending = true;
    setTimeout(function () { declutterPending = false; declutter(); countOutside(); }, 0);
  }
  map.on("moveend zoomend resize", declutterSoon);

  // ---- overview inset: the whole municipality, the view as a rectangle ---------------------
  var overview = null, viewRect = null, overviewDots = null;
  var Overview = L.Control.extend({
    options: { position: "topright" },
    onAdd: function () {
      var div = L.DomUtil.create("div", "cw-overview");
      div.style.width = "240px";
      div.style.height = "200px";
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    }
  });
  var overviewControl = new Overview().addTo(map);
  (function makeOverview() {
    var div = overviewControl.getContainer();
    overview = L.map(div, { attributionControl: false, zoomControl: false, dragging: false,
                            scrollWheelZoom: false, doubleClickZoom: false, boxZoom: false,
                            keyboard: false, touchZoom: false, zoomSnap: 0.1,
                            zoomAnimation: false, fadeAnimation: false, preferCanvas: true });
    overview.fitBounds(cityBounds, { animate: false });   // a view before any layer
    L.geoJSON(window.__CW_DISTRICTS__.toGeoJSON(), {
      interactive: false,
      style: function () {
        return { color: C.map_edge, weight: 1, fillColor: C.land, fillOpacity: 0.8 };
      }
    }).addTo(overview);
    overviewDots = L.layerGroup().addTo(overview);
    viewRect = L.rectangle(cityBounds, { color: C.accent, weight: 2, fill: true,
                                         fillColor: C.accent, fillOpacity: 0.12,
                                         interactive: false }).addTo(overview);
    overview.fitBounds(cityBounds, { animate: false });
    // A click on the inset moves the map there (the view's size kept).
    overview.on("click", function (e) {
      auto = false;
      map.panTo(e.latlng, { animate: false });
    });
  })();
  function drawOverview() {
    if (!overview) return;
    overview.invalidateSize({ animate: false });
    overview.fitBounds(cityBounds, { animate: false });
    viewRect.setBounds(map.getBounds());
  }
  function drawOverviewDots() {
    if (!overview) return;
    overviewDots.clearLayers();
    for (var id in markers.cases) {
      var m = markers.cases[id];
      if (!held.contains(m.getLatLng())) continue;
      var state = caseState(m.cw);
      L.circleMarker(m.getLatLng(), { radius: state === "late" ? 3 : 2, stroke: false,
        fillColor: state === "late" ? C.alarm : state === "soon" ? C.warn : C.case,
        fillOpacity: 0.9, interactive: false }).addTo(overviewDots);
    }
  }
  map.on("moveend zoomend resize", drawOverview);

  // ---- cases outside the view: counted, one click away ------------------------------------
  var offview = L.DomUtil.create("div", "cw-offview");
  offview.style.display = "none";
  var Offview = L.Control.extend({
    options: { position: "topright" },
    onAdd: function () { L.DomEvent.disableClickPropagation(offview); return offview; }
  });
  new Offview().addTo(map);
  var outsideIds = [];
  function countOutside() {
    var b = map.getBounds(), late = 0;
    outsideIds = [];
    for (var id in markers.cases) {
      var m = markers.cases[id], ll = m.getLatLng();
      if (!held.contains(ll) || b.contains(ll)) continue;
      outsideIds.push(id);
      if (caseState(m.cw) === "late") late += 1;
    }
    if (outsideIds.length === 0) {
      offview.style.display = "none";
    } else {
      offview.style.display = "";
      offview.textContent = WORDS.offview.replace("{n}", outsideIds.length)
        + (late ? WORDS.offview_late.replace("{n}", late) : "") + " ▸";
      offview.classList.toggle("cw-late", late > 0);
    }
    return { n: outsideIds.length, late: late };
  }
  function showOutside() {           // the view grows to take them in
    if (outsideIds.length === 0) return false;
    var b = map.getBounds();
    outsideIds.forEach(function (id) {
      var m = markers.cases[id];
      if (m) b.extend(m.getLatLng());
    });
    auto = false;
    follow = null;
    map.fitBounds(b, { animate: false, padding: [30, 30] });
    return true;
  }
  L.DomEvent.on(offview, "click", showOutside);

  // ---- the work area again (the default view), beside the zoom buttons --------------------
  var Home = L.Control.extend({
    options: { position: "topleft" },
    onAdd: function () {
      var bar = L.DomUtil.create("div", "leaflet-bar");
      var a = L.DomUtil.create("a", "cw-home", bar);
      a.href = "#";
      a.textContent = "⌂ " + WORDS.work;
      L.DomEvent.disableClickPropagation(bar);
      L.DomEvent.on(a, "click", function (e) {
        L.DomEvent.preventDefault(e);
        auto = true; follow = null; unpick(); ensureView(true);
      });
      return bar;
    }
  });
  new Home().addTo(map);

  // ---- metric scale bar; without tiles, say that no street basemap is shipped -------------
  L.control.scale({ metric: true, imperial: false, maxWidth: 220, position: "bottomleft" })
    .addTo(map);
  // The note is the legend's last line: one box in the corner, nothing laid over it.
  var legendBox = document.getElementById("cw-legend");
  if (!CFG.tiles && legendBox) {
    var note = document.createElement("div");
    note.className = "cw-note";
    note.id = "cw-no-basemap";
    note.textContent = WORDS.no_basemap;
    legendBox.appendChild(note);
  }

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
  ensureView();
  reportView();
  drawOverview();

  function unpick() {
    var was = picked;
    picked = null;
    pickLines.clearLayers();
    if (was && markers.cases[was]) markers.cases[was].setStyle(caseStyle(markers.cases[was].cw));
  }

  // Picking a case: centred on it, wide enough for its nearest available units (and at least
  // minFrameM across), so it is seen with its neighbourhood and who can go.
  function frameCase(id) {
    var m = markers.cases[id];
    if (m === undefined) return null;
    ensureView();
    auto = false;
    var at = m.getLatLng(), near = [];
    for (var uid in markers.units) {
      var u = markers.units[uid];
      if (u.cw.status !== "available" || now - u.cw.ts > STALE_MS) continue;
      if (!held.contains(u.getLatLng())) continue;
      near.push([at.distanceTo(u.getLatLng()), uid]);
    }
    near.sort(function (a, b) { return a[0] - b[0]; });
    near = near.slice(0, CFG.unitsInFrame);
    var half = CFG.minFrameM / 2;
    near.forEach(function (d) { half = Math.max(half, d[0] * 1.1); });
    half = Math.min(half, 15000);
    // The picked case ringed, a line to each of those units (who can go).
    var was = picked;
    picked = id;
    if (was && markers.cases[was]) markers.cases[was].setStyle(caseStyle(markers.cases[was].cw));
    m.setStyle(caseStyle(m.cw));
    pickLines.clearLayers();
    near.forEach(function (d) {
      L.polyline([at, markers.units[d[1]].getLatLng()], { color: C.accent, weight: 3,
        opacity: 0.9, dashArray: "8 6", interactive: false }).addTo(pickLines);
    });
    var box = at.toBounds(2 * half);
    var zoom = map.getBoundsZoom(box, false, L.point(40, 40));
    map.setView(at, Math.min(zoom, 17), { animate: false });
    return { zoom: map.getZoom(), units: near.map(function (d) { return d[1]; }) };
  }

  window.cw = {
    layers: layers,
    update: function (patch) {
      var t0 = performance.now();
      if (patch.now) now = patch.now;
      ["units", "cases", "sensors"].forEach(function (kind) {
        (patch[kind] || []).forEach(function (rec) { upsert(kind, rec); });
        ((patch.removed || {})[kind] || []).forEach(function (id) { remove(kind, id); });
      });
      // The first records (after a load or a full sync): the view goes to the work. Later
      // the work is followed calmly (setNow, every 30 s), never on every update.
      if (!fittedOnce && (patch.cases || []).length + (patch.units || []).length > 0) {
        fittedOnce = true;
        if (auto) ensureView(true);
      }
      keepFollowing();
      countOutside();
      return performance.now() - t0;
    },
    setNow: function (ms) {
      var t0 = performance.now();
      now = ms;
      pulse = !pulse;
      ticks += 1;
      restyle("units");
      restyle("cases");
      countOutside();
      if (ticks % 5 === 1) drawOverviewDots();
      if (auto && ticks % 30 === 0) ensureView(false);   // the work moved: follow it, calmly
      return performance.now() - t0;
    },
    // A district wall (--districts): its districts' outlines drawn strong in the accent, the
    // other districts' faint. An empty list: every district alike. Returns how many are ours.
    setScope: function (codes) {
      var ours = {}, n = 0;
      (codes || []).forEach(function (c) { ours[c] = true; n += 1; });
      var d = layers.districts || window.__CW_DISTRICTS__;
      if (!d) return 0;
      d.setStyle(function (f) {
        var code = f && f.properties ? f.properties.adcode : null;
        if (!n) return { color: C.map_edge, weight: 2, opacity: 1 };
        return ours[code] ? { color: C.accent, weight: 3, opacity: 1 }
                          : { color: C.map_edge, weight: 1, opacity: 0.35 };
      });
      return n;
    },
    setScale: function (k) {
      scale = (k > 0 && isFinite(k)) ? k : 1;
      document.documentElement.style.setProperty("--cw-k", String(scale));   // the words too
      declutterSoon();
      restyle("units"); restyle("cases"); restyle("sensors");
      return scale;
    },
    clear: function () {
      unpick();
      fittedOnce = false;
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
    frameCase: frameCase,
    follow: function (kind, id) {
      ensureView();
      if (kind !== null) auto = false;
      follow = (kind === null) ? null : [kind, id];
      keepFollowing();
      return follow !== null && markers[kind][id] !== undefined;
    },
    following: function () { return follow; },
    // The default view again: the work area (the name kept from when it was the whole city).
    wholeCity: function () { auto = true; follow = null; unpick(); return ensureView(true); },
    picked: function () { return picked; },
    workBounds: function () {
      var b = workBounds();
      return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()];
    },
    caseNear: function (x, y, px_) {     // the case marker nearest a point of the view
      var best = "", bestD = px_;
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
    declutter: declutter,
    outside: function () { return countOutside(); },
    showOutside: showOutside,
    overviewRect: function () {
      var b = viewRect.getBounds();
      return [b.getSouth(), b.getWest(), b.getNorth(), b.getEast()];
    },
    // A marker's drawn size (CSS px) and shape: the size rule is checked against this.
    marker: function (kind, id) {
      var m = markers[kind][id];
      return m === undefined ? null : { radius: m._radius, shape: m.options.shape,
                                        fill: m.options.fillColor, ring: m.options.ring };
    },
    overlay: null,
    setOverlay: function (url, south, west, north, east) {
      if (cw.overlay) { map.removeLayer(cw.overlay); cw.overlay = null; }
      if (url) {
        cw.overlay = L.imageOverlay(url, [[south, west], [north, east]],
                                    { opacity: 0.95, interactive: false, pane: "cwHeat" })
          .addTo(map);
      }
      // Heat on: the markers step back (dimmed, thinner), so the heat reads at a glance;
      // overdue cases and sensor alarms stay as they are.
      if (heatOn !== !!url) {
        heatOn = !!url;
        restyle("units"); restyle("cases"); restyle("sensors");
      }
    }
  };
})();

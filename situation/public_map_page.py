"""The public city map's page furniture (``situation.public_map``): its style sheet and the
one fixed script that draws the cases from a JSON literal (only ever set with textContent).
Colours from the one palette. No Qt."""
from __future__ import annotations

from situation.palette import CARD_ALPHA, PUBLIC, SHADOW_ALPHA, rgb


def css_rgba(colour: str, alpha: float) -> str:
    return "rgba({}, {}, {}, {:g})".format(*rgb(colour), alpha)


CSS = """
html, body { margin: 0; padding: 0; height: 100%%; }
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", "Source Han Sans SC",
       "Helvetica Neue", Arial, sans-serif; color: %(TEXT)s; }
.leaflet-container { background: %(GROUND)s; font-family: inherit; }
.cw-card { position: absolute; z-index: 1000; background: %(card)s;
           border-radius: 10px; box-shadow: 0 2px 12px %(shadow)s; }
#cw-title { top: 14px; left: 60px; padding: 12px 18px; border-top: 4px solid %(BRAND)s; }
#cw-title h1 { margin: 0; font-size: 22px; font-weight: 700; letter-spacing: 0.5px; }
#cw-title h1 .cw-heart { color: %(BRAND)s; }
#cw-title .cw-sub { margin-top: 4px; font-size: 13px; color: %(SUB)s; }
#cw-title .cw-total { font-size: 13px; margin-top: 6px; }
#cw-title .cw-total b { font-size: 20px; color: %(BRAND)s; margin: 0 2px; }
#cw-panel { top: 14px; right: 14px; max-height: calc(100%% - 62px); width: 320px;
            padding: 12px 16px;
            overflow-y: auto; font-size: 13px; }
#cw-panel h2 { font-size: 14px; margin: 12px 0 6px; padding-bottom: 3px;
               border-bottom: 1px solid %(RULE)s; color: %(HEAD)s; }
#cw-panel h2:first-child { margin-top: 0; }
#cw-panel table { width: 100%%; border-collapse: collapse; }
#cw-panel td { padding: 2px 0; vertical-align: middle; }
#cw-panel td.n { text-align: right; font-variant-numeric: tabular-nums; width: 44px; }
#cw-panel td.bar { width: 90px; padding-left: 8px; }
#cw-panel .cw-bar { height: 7px; border-radius: 4px; background: %(BRAND)s; opacity: 0.75; }
#cw-panel .cw-sw { display: inline-block; width: 9px; height: 9px; border-radius: 50%%;
                   margin: 0 8px 0 3px; vertical-align: 0; border: 1.5px solid %(CARD)s;
                   box-shadow: 0 0 0 3px var(--soft, %(RULE)s); }
#cw-panel .cw-none { color: %(MUTED)s; }
#cw-panel .cw-note { color: %(MUTED)s; font-size: 12px; margin: 0 0 4px; }
#cw-panel ul.cw-odd { margin: 0; padding: 0; list-style: none; }
#cw-panel ul.cw-odd li { padding: 4px 0; border-bottom: 1px dashed %(RULE)s;
                         overflow-wrap: anywhere; }
#cw-panel ul.cw-odd .cw-coord { color: %(MUTED)s; font-size: 12px; }
#cw-panel .cw-foot { margin-top: 12px; color: %(MUTED)s; font-size: 11.5px; }
#cw-panel .cw-cols td:first-child { white-space: nowrap; }
#cw-panel .cw-grid { display: grid; grid-template-columns: 1fr 1fr; column-gap: 14px; }
#cw-panel .cw-grid div { display: flex; padding: 2px 0; white-space: nowrap; }
#cw-panel .cw-grid div span.name { flex: 1; overflow: hidden; text-overflow: ellipsis; }
#cw-panel .cw-grid div span.n { font-variant-numeric: tabular-nums; padding-left: 4px; }
#cw-panel .cw-grid div.zero { color: %(FAINT)s; }
@media (max-width: 760px) {
  #cw-title { left: 10px; right: 10px; top: 10px; padding: 8px 12px; }
  #cw-title h1 { font-size: 17px; }
  #cw-panel { top: auto; left: 10px; right: 10px; bottom: 28px; width: auto; max-height: 38%%; }
}
.cw-dlabel.cw-small span { font-size: 10.5px; }
.cw-dlabel span { position: absolute; transform: translate(-50%%, -50%%); white-space: nowrap;
                  font-size: 12px; font-weight: 600; color: %(LABEL)s; pointer-events: none;
                  text-shadow: 0 0 3px %(CARD)s, 0 0 3px %(CARD)s, 0 0 2px %(CARD)s; }
.cw-case { min-width: 220px; max-width: 300px; font-size: 13px; line-height: 1.45; }
.cw-case .cw-case-title { font-weight: 700; font-size: 14px; margin-bottom: 4px;
                          overflow-wrap: anywhere; white-space: pre-wrap; }
.cw-case table { border-collapse: collapse; }
.cw-case td { padding: 1px 8px 1px 0; vertical-align: top; overflow-wrap: anywhere; }
.cw-case td:first-child { color: %(MUTED)s; white-space: nowrap; }
.cw-case .cw-case-desc { margin-top: 6px; padding-top: 6px; border-top: 1px solid %(RULE)s;
                         white-space: pre-wrap; overflow-wrap: anywhere; }
.cw-tip { font-size: 12px; width: max-content; max-width: 260px; white-space: pre-wrap;
          overflow-wrap: anywhere; }
.cw-tip b { display: block; }
""" % {**PUBLIC, "card": css_rgba(PUBLIC["CARD"], CARD_ALPHA),
       "shadow": css_rgba(PUBLIC["SHADOW"], SHADOW_ALPHA)}

# Fixed script: the data arrives as a JSON literal and is only ever set with textContent.
CASES_JS = """
(function () {
    var map = %(map)s;
    var words = %(words)s;
    var cases = %(cases)s;
    var edge = %(edge)s;
    // Cases on a canvas of their own, above the district names, below tooltips and popups.
    var pane = map.createPane("cw-cases");
    pane.style.zIndex = 620;
    var renderer = L.canvas({pane: "cw-cases"});
    var layer = L.featureGroup().addTo(map);
    function el(tag, cls, text) {
        var e = document.createElement(tag);
        if (cls) { e.className = cls; }
        if (text !== undefined && text !== null) { e.textContent = String(text); }
        return e;
    }
    function card(c) {
        var box = el("div", "cw-case");
        box.appendChild(el("div", "cw-case-title", c.title));
        var table = el("table");
        var rows = [[words.category, c.category], [words.stage, c.stage],
                    [words.district, c.district], [words.reported, c.reported],
                    [words.case_id, c.id]];
        if (c.address) { rows.push([words.address, c.address]); }
        rows.forEach(function (r) {
            var tr = el("tr");
            tr.appendChild(el("td", null, r[0]));
            tr.appendChild(el("td", null, r[1]));
            table.appendChild(tr);
        });
        box.appendChild(table);
        if (c.description) { box.appendChild(el("div", "cw-case-desc", c.description)); }
        return box;
    }
    function tip(c) {
        var box = el("div", "cw-tip");
        box.appendChild(el("b", null, c.title));
        box.appendChild(document.createTextNode(c.category + " · " + c.stage));
        return box;
    }
    cases.forEach(function (c) {
        var m = L.circleMarker([c.lat, c.lon], {
            radius: c.priority === 1 ? 7.5 : 6, color: edge, weight: 1.5,
            fillColor: c.colour, fillOpacity: 0.92, caseId: c.id,
            pane: "cw-cases", renderer: renderer
        });
        m.bindPopup(function () { return card(c); }, {maxWidth: 320, minWidth: 220});
        m.bindTooltip(tip(c), {direction: "top", offset: [0, -6]});
        m.addTo(layer);
    });
    map.attributionControl.addAttribution(words.boundaries);
})();
"""

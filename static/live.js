// Live updates for the status page. The server renders the whole page; this script keeps it
// current without reloading, from the Server-Sent Events of /api/events (one "status" event
// carrying the page's view model as JSON whenever something changed). Without JavaScript the
// page refreshes itself instead (<noscript> meta refresh).
//
// Every value is written with textContent or createTextNode, never parsed as HTML, so text that
// came from Kafka (station names, train ids) stays text.
(function () {
  "use strict";
  if (typeof window.EventSource !== "function") {
    return;
  }

  var live = { updates: 0, connected: false };
  window.ctaLive = live;

  function byId(id) {
    return document.getElementById(id);
  }

  function setText(el, value) {
    if (el && el.textContent !== value) {
      el.textContent = value;
    }
  }

  function setHidden(el, hidden) {
    if (el && el.hidden !== hidden) {
      el.hidden = hidden;
    }
  }

  // Same markup as the template: <span class="train CSS">ID</span> STATUS, or a dash.
  function fillTrain(td, t) {
    var key = t ? t.css + "\n" + t.train_id + "\n" + t.status : "";
    if (td.getAttribute("data-v") === key && td.firstChild) {
      return;
    }
    while (td.firstChild) {
      td.removeChild(td.firstChild);
    }
    td.setAttribute("data-v", key);
    if (!t) {
      td.appendChild(document.createTextNode("---"));
      return;
    }
    var span = document.createElement("span");
    span.className = "train " + t.css;
    span.textContent = t.train_id;
    td.appendChild(span);
    td.appendChild(document.createTextNode(" " + t.status));
  }

  var SVG = "http://www.w3.org/2000/svg";

  // One SVG element with attributes and optional text (set as text, never parsed).
  function svgEl(name, attrs, text) {
    var el = document.createElementNS(SVG, name);
    for (var k in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, k)) {
        el.setAttribute(k, String(attrs[k]));
      }
    }
    if (text !== undefined) {
      el.textContent = text;
    }
    return el;
  }

  function titled(el, text) {
    el.appendChild(svgEl("title", {}, text));
    return el;
  }

  // Redraws a line's diagram in place from the server's layout (the same structure the
  // template renders): spines, stations with their sparklines, and the train markers.
  function updateDiagram(svg, d) {
    if (!svg || !d) {
      return;
    }
    var key = JSON.stringify(d);
    if (svg.getAttribute("data-v") === key) {
      return;
    }
    svg.setAttribute("data-v", key);
    svg.setAttribute("viewBox", "0 0 " + d.width + " " + d.height);
    while (svg.firstChild) {
      svg.removeChild(svg.firstChild);
    }
    var spines = svgEl("g", { "class": "spines" });
    for (var i = 0; i < d.spines.length; i++) {
      spines.appendChild(svgEl("path", { d: d.spines[i] }));
    }
    var stations = svgEl("g", { "class": "stations" });
    for (var j = 0; j < d.stations.length; j++) {
      var st = d.stations[j];
      var g = svgEl("g", { "class": "station", "data-station": st.station_id });
      g.appendChild(svgEl("circle", { cx: st.x, cy: st.y, r: st.r }));
      g.appendChild(svgEl("text", { x: st.name_x, y: st.name_y }, st.name));
      g.appendChild(titled(svgEl("polyline", { "class": "spark", points: st.spark }), st.spark_title));
      stations.appendChild(g);
    }
    var trains = svgEl("g", { "class": "trains" });
    for (var t = 0; t < d.trains.length; t++) {
      var m = d.trains[t];
      var marker = svgEl("g", {
        "class": "marker " + m.css,
        "data-train": m.train_id,
        "data-station": m.station_id,
        "data-direction": m.direction,
        transform: "translate(" + m.x + "," + m.y + ")"
      });
      titled(marker, m.label);
      marker.appendChild(svgEl("path", { d: m.shape }));
      trains.appendChild(marker);
    }
    svg.appendChild(spines);
    svg.appendChild(stations);
    svg.appendChild(trains);
  }

  function newRow(id) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-station", id);
    var classes = ["", "dir-a", "dir-b", "num hour", "num entries"];
    for (var i = 0; i < classes.length; i++) {
      var td = document.createElement("td");
      if (classes[i]) {
        td.className = classes[i];
      }
      tr.appendChild(td);
    }
    return tr;
  }

  // One line's table: rows follow the server's order; a station may be on several lines and
  // then has a row in each line's table.
  function updateLine(line) {
    var section = byId("line-" + line.slug);
    if (!section) {
      return;
    }
    setText(section.querySelector(".station-count"), String(line.stations.length));
    setText(section.querySelector(".train-count"), String(line.trains));
    updateDiagram(section.querySelector("svg.diagram"), line.diagram);
    var tbody = section.querySelector("tbody");
    if (!tbody) {
      return;
    }
    var existing = {};
    var rows = tbody.rows;
    for (var r = 0; r < rows.length; r++) {
      existing[rows[r].getAttribute("data-station")] = rows[r];
    }
    var wanted = {};
    for (var i = 0; i < line.stations.length; i++) {
      var st = line.stations[i];
      var id = String(st.station_id);
      var tr = existing[id] || newRow(id);
      wanted[id] = true;
      setText(tr.cells[0], st.name);
      fillTrain(tr.cells[1], st.a);
      fillTrain(tr.cells[2], st.b);
      setText(tr.cells[3], String(st.this_hour));
      setText(tr.cells[4], String(st.entries));
      if (tbody.rows[i] !== tr) {
        tbody.insertBefore(tr, tbody.rows[i] || null);
      }
    }
    for (var key in existing) {
      if (Object.prototype.hasOwnProperty.call(existing, key) && !wanted[key]) {
        tbody.removeChild(existing[key]);
      }
    }
  }

  function apply(s) {
    setText(byId("weather"), s.weather === null ? "no reading yet" : s.weather);
    setText(byId("total-entries"), String(s.total_entries));
    setText(byId("consumed"), String(s.consumed));
    setText(byId("skipped"), String(s.skipped));
    setHidden(byId("skipped-note"), !(s.skipped > 0));
    var recovering = byId("recovering");
    setText(recovering, s.recovering === null ? "" : s.recovering);
    setHidden(recovering, s.recovering === null);
    var stale = byId("stale");
    setText(stale, s.stale === null ? "" : s.stale);
    setHidden(stale, s.stale === null);
    for (var i = 0; i < s.lines.length; i++) {
      updateLine(s.lines[i]);
    }
  }

  function start() {
    var source = new EventSource("/api/events");
    source.addEventListener("status", function (ev) {
      var s;
      try {
        s = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      apply(s);
      live.updates += 1;
      live.connected = true;
      setHidden(byId("live"), false);
    });
    // The browser reconnects by itself (after the server's retry hint); show the state.
    source.addEventListener("error", function () {
      live.connected = false;
      setHidden(byId("live"), true);
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

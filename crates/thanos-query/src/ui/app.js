// Thanos-compatible querier UI: graph page (table and SVG graph) and stores page.
// Plain JavaScript, no dependencies; all requests go to this server under its prefix.
(function () {
  "use strict";

  var PREFIX = document.documentElement.getAttribute("data-prefix") || "";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
    "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  var UNITS = { s: 1, m: 60, h: 3600, d: 86400, w: 604800, y: 31536000 };
  // Points per series asked for in graph mode.
  var GRAPH_POINTS = 250;

  function $(id) { return document.getElementById(id); }

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    return node;
  }

  // `name{a="b", c="d"}` as Prometheus prints series.
  function formatSeries(metric) {
    var name = metric.__name__ || "";
    var parts = Object.keys(metric).filter(function (k) { return k !== "__name__"; })
      .map(function (k) { return k + "=" + JSON.stringify(metric[k]); });
    if (parts.length === 0) { return name || "{}"; }
    return name + "{" + parts.join(", ") + "}";
  }

  function parseRange(text) {
    var m = /^(\d+)([smhdwy])$/.exec(text);
    return m ? Number(m[1]) * UNITS[m[2]] : 3600;
  }

  function formatTime(seconds) {
    return new Date(seconds * 1000).toISOString().replace(".000Z", "Z");
  }

  // GET an API path; resolves with the decoded envelope, rejects with an error message.
  function api(path, params) {
    var query = Object.keys(params).map(function (k) {
      return encodeURIComponent(k) + "=" + encodeURIComponent(params[k]);
    }).join("&");
    return fetch(PREFIX + path + (query ? "?" + query : ""), { headers: { Accept: "application/json" } })
      .then(function (resp) {
        return resp.text().then(function (body) {
          var json;
          try { json = JSON.parse(body); } catch (e) {
            throw new Error("HTTP " + resp.status + ": " + body.slice(0, 200));
          }
          if (json.status !== "success") {
            throw new Error((json.errorType ? json.errorType + ": " : "") + (json.error || ("HTTP " + resp.status)));
          }
          return json;
        });
      });
  }

  // ---------------------------------------------------------------- graph page

  var state = { tab: "table" };

  function setTab(tab) {
    state.tab = tab === "graph" ? "graph" : "table";
    $("tab-table").classList.toggle("active", state.tab === "table");
    $("tab-graph").classList.toggle("active", state.tab === "graph");
    $("table-view").hidden = state.tab !== "table";
    $("graph-view").hidden = state.tab !== "graph";
    $("range-box").hidden = state.tab !== "graph";
  }

  function showError(message) {
    $("error").textContent = message;
    $("error").hidden = !message;
  }

  function showWarnings(list) {
    var ul = $("warnings");
    ul.textContent = "";
    (list || []).forEach(function (w) { ul.appendChild(el("li", {}, w)); });
    ul.hidden = !list || list.length === 0;
  }

  function commonParams() {
    return {
      dedup: $("dedup").checked ? "true" : "false",
      partial_response: $("partial").checked ? "true" : "false"
    };
  }

  function saveUrl(expr) {
    var p = new URLSearchParams();
    p.set("expr", expr);
    p.set("tab", state.tab);
    p.set("range", $("range").value);
    p.set("dedup", $("dedup").checked ? "1" : "0");
    p.set("partial_response", $("partial").checked ? "1" : "0");
    history.replaceState(null, "", location.pathname + "?" + p.toString());
  }

  function execute() {
    var expr = $("expr").value.trim();
    showError("");
    showWarnings([]);
    if (!expr) { return; }
    saveUrl(expr);
    $("status").textContent = "Loading…";
    var started = Date.now();
    var done = state.tab === "graph" ? runRange(expr) : runInstant(expr);
    done.then(function (json) {
      showWarnings(json.warnings);
      $("status").textContent = "Load time: " + (Date.now() - started) + "ms";
    }, function (err) {
      showError(err.message);
      $("status").textContent = "";
    });
  }

  function runInstant(expr) {
    var params = commonParams();
    params.query = expr;
    return api("/api/v1/query", params).then(function (json) {
      renderTable(json.data);
      return json;
    }, function (err) {
      renderTable({ resultType: "vector", result: [] });
      throw err;
    });
  }

  function renderTable(data) {
    var tbody = $("result-table").querySelector("tbody");
    tbody.textContent = "";
    var rows = [];
    if (data.resultType === "vector") {
      data.result.forEach(function (s) {
        var v = s.value ? s.value[1] : (s.histogram ? "histogram count " + s.histogram[1].count : "");
        rows.push([formatSeries(s.metric), v]);
      });
    } else if (data.resultType === "matrix") {
      data.result.forEach(function (s) {
        var vals = (s.values || []).map(function (p) { return p[1] + " @" + p[0]; });
        rows.push([formatSeries(s.metric), vals.join("\n")]);
      });
    } else if (data.resultType === "scalar" || data.resultType === "string") {
      rows.push([data.resultType, String(data.result[1])]);
    }
    if (rows.length === 0) {
      var empty = el("tr", { "class": "empty" });
      empty.appendChild(el("td", { colspan: "2" }, "Empty query result"));
      tbody.appendChild(empty);
      return;
    }
    rows.forEach(function (r) {
      var tr = el("tr", { "class": "result" });
      tr.appendChild(el("td", { "class": "series" }, r[0]));
      tr.appendChild(el("td", { "class": "value" }, r[1]));
      tbody.appendChild(tr);
    });
  }

  function runRange(expr) {
    var range = parseRange($("range").value);
    var end = Date.now() / 1000;
    var step = Math.max(1, Math.floor(range / GRAPH_POINTS));
    var params = commonParams();
    params.query = expr;
    params.start = (end - range).toFixed(3);
    params.end = end.toFixed(3);
    params.step = String(step);
    return api("/api/v1/query_range", params).then(function (json) {
      renderGraph(json.data.result || [], end - range, end, step);
      return json;
    }, function (err) {
      renderGraph([], end - range, end, step);
      throw err;
    });
  }

  // Draws every series as an SVG polyline, broken where points are missing.
  function renderGraph(series, start, end, step) {
    var chart = $("chart");
    var legend = $("legend");
    chart.textContent = "";
    legend.textContent = "";
    var W = 900, H = 320, L = 70, R = 45, T = 10, B = 30;
    var min = Infinity, max = -Infinity;
    series.forEach(function (s) {
      (s.values || []).forEach(function (p) {
        var v = Number(p[1]);
        if (isFinite(v)) { min = Math.min(min, v); max = Math.max(max, v); }
      });
    });
    if (min === Infinity) { min = 0; max = 1; }
    if (min === max) { min -= 1; max += 1; }
    var x = function (t) { return L + (t - start) / (end - start) * (W - L - R); };
    var y = function (v) { return T + (max - v) / (max - min) * (H - T - B); };
    var root = svg("svg", { width: W, height: H, viewBox: "0 0 " + W + " " + H });
    for (var i = 0; i <= 4; i++) {
      var v = min + (max - min) * i / 4;
      if (Math.abs(v) < (max - min) * 1e-9) { v = 0; } // rounding noise around zero
      var t = start + (end - start) * i / 4;
      root.appendChild(svg("line", { "class": "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      var yl = svg("text", { x: L - 5, y: y(v) + 4, "text-anchor": "end" });
      yl.textContent = Number(v.toPrecision(4)).toString();
      root.appendChild(yl);
      var xl = svg("text", { x: x(t), y: H - 10, "text-anchor": "middle" });
      xl.textContent = new Date(t * 1000).toISOString().slice(11, 19);
      root.appendChild(xl);
    }
    root.appendChild(svg("line", { "class": "axis", x1: L, x2: L, y1: T, y2: H - B }));
    root.appendChild(svg("line", { "class": "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    series.forEach(function (s, n) {
      var color = COLORS[n % COLORS.length];
      var d = "", prev = null;
      (s.values || []).forEach(function (p) {
        var t = Number(p[0]), v = Number(p[1]);
        if (!isFinite(v)) { prev = null; return; }
        var cmd = (prev === null || t - prev > step * 1.5) ? "M" : "L";
        d += cmd + x(t).toFixed(1) + " " + y(v).toFixed(1) + " ";
        prev = t;
      });
      if (d) {
        root.appendChild(svg("path", { "class": "series", d: d.trim(), stroke: color }));
      }
      var item = el("li");
      item.appendChild(el("span", { "class": "swatch", style: "background:" + color }));
      item.appendChild(document.createTextNode(formatSeries(s.metric)));
      legend.appendChild(item);
    });
    chart.appendChild(root);
  }

  function initGraph() {
    $("graph-page").hidden = false;
    $("nav-graph").classList.add("current");
    var p = new URLSearchParams(location.search);
    if (p.has("expr")) { $("expr").value = p.get("expr"); }
    if (p.has("range")) {
      var opt = Array.prototype.some.call($("range").options, function (o) { return o.value === p.get("range"); });
      if (opt) { $("range").value = p.get("range"); }
    }
    if (p.has("dedup")) { $("dedup").checked = p.get("dedup") !== "0" && p.get("dedup") !== "false"; }
    if (p.has("partial_response")) {
      $("partial").checked = p.get("partial_response") !== "0" && p.get("partial_response") !== "false";
    }
    setTab(p.get("tab"));
    $("query-form").addEventListener("submit", function (ev) { ev.preventDefault(); execute(); });
    $("tab-table").addEventListener("click", function () { setTab("table"); execute(); });
    $("tab-graph").addEventListener("click", function () { setTab("graph"); execute(); });
    $("range").addEventListener("change", execute);
    $("expr").focus();
    if ($("expr").value.trim()) { execute(); }
  }

  // --------------------------------------------------------------- stores page

  function formatBound(ms, unbounded) {
    // Sentinels (math.MinInt64/MaxInt64) do not survive JSON numbers exactly.
    if (Math.abs(ms) > 8.64e15) { return unbounded; }
    return formatTime(ms / 1000);
  }

  function renderStores(data) {
    var root = $("stores");
    root.textContent = "";
    var types = Object.keys(data).sort();
    if (types.length === 0) {
      root.appendChild(el("p", { "class": "empty" }, "No endpoints configured."));
    }
    types.forEach(function (type) {
      root.appendChild(el("h2", {}, type));
      var table = el("table", { "class": "stores", "data-type": type });
      var head = el("tr");
      ["Endpoint", "Status", "Announced label sets", "Min time", "Max time", "Last check", "Last error"]
        .forEach(function (h) { head.appendChild(el("th", {}, h)); });
      var thead = el("thead");
      thead.appendChild(head);
      table.appendChild(thead);
      var tbody = el("tbody");
      data[type].forEach(function (s) {
        var tr = el("tr", { "class": "store" });
        var health = s.lastCheck === null ? "PENDING" : (s.lastError === null ? "UP" : "DOWN");
        tr.appendChild(el("td", { "class": "endpoint" }, s.name));
        tr.appendChild(el("td", { "class": "health health-" + health.toLowerCase() }, health));
        var sets = (s.labelSets || []).map(formatSeries).join("\n");
        tr.appendChild(el("td", { "class": "labels" }, sets));
        tr.appendChild(el("td", { "class": "time" }, formatBound(s.minTime, "-∞")));
        tr.appendChild(el("td", { "class": "time" }, formatBound(s.maxTime, "+∞")));
        tr.appendChild(el("td", {}, s.lastCheck || "never"));
        tr.appendChild(el("td", { "class": "last-error" }, s.lastError || ""));
        tbody.appendChild(tr);
      });
      table.appendChild(tbody);
      root.appendChild(table);
    });
  }

  function initStores() {
    $("stores-page").hidden = false;
    $("nav-stores").classList.add("current");
    api("/api/v1/stores", {}).then(function (json) { renderStores(json.data || {}); },
      function (err) {
        $("stores-error").textContent = err.message;
        $("stores-error").hidden = false;
      });
  }

  if (/\/stores\/?$/.test(location.pathname)) { initStores(); } else { initGraph(); }
  // Handlers are attached: tests (and scripts) wait for this before typing.
  document.documentElement.dataset.ready = "1";
})();

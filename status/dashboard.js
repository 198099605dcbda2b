"use strict";
// Re-renders the server-rendered page from /api/v1/status?since=1h: services
// as collapsible groups (problems first), each with the hour's timeline, the
// production verdict and the certificate expiry view. Builds every node with
// createElement/textContent, never innerHTML: findings carry messages from
// probed services, which are not trusted markup.
(function () {
  var refresh = parseInt(document.body.getAttribute("data-refresh"), 10) || 5000;
  var levels = ["mtls", "tls", "plain", "down"];
  var SVG = "http://www.w3.org/2000/svg";
  var notReadyShown = 6, expiryShown = 25;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function svg(tag, attrs, title) {
    var e = document.createElementNS(SVG, tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (title) { var t = document.createElementNS(SVG, "title"); t.textContent = title; e.appendChild(t); }
    return e;
  }
  function isSet(t) { return t && t.indexOf("0001-01-01") !== 0; }
  function ms(t) { return isSet(t) ? Date.parse(t) : 0; }

  // Twins of daysText, daysTone, renewIn, ago, rowClass, glyph (dashboard.go) and of
  // severity, groupClass, markKind, markTitle, clock, pct (dashboard_view.go).
  function daysText(d) { return d === undefined || d === null ? "\u2014" : d < 0 ? "expired" : d + " d"; }
  function daysTone(d) { return d === undefined || d === null ? "muted" : d < 7 ? "bad" : d < 30 ? "warn" : "ok"; }
  function renewIn(t, now) {
    var d = Math.floor((ms(t) - now) / 864e5);
    return d >= 0 ? "in " + d + " d" : "due";
  }
  function ago(t, now) {
    if (!isSet(t)) return "";
    var s = (Date.parse(now) - Date.parse(t)) / 1000;
    if (s < 60) return "just now";
    if (s < 3600) return Math.floor(s / 60) + "m ago";
    if (s < 48 * 3600) return Math.floor(s / 3600) + "h ago";
    return Math.floor(s / 86400) + "d ago";
  }
  function rowClass(c) {
    var cls = ["row"];
    if (c.drift) cls.push("drift");
    if (c.below_floor) cls.push("below-floor");
    if (c.remediation && c.remediation.degraded) cls.push("degraded");
    return cls.join(" ");
  }
  function groupClass(s) {
    var cls = ["group"];
    if (s.drift) cls.push("drift");
    if (s.below_floor) cls.push("below-floor");
    if (s.degraded) cls.push("degraded");
    if (s.production_ready < s.containers) cls.push("not-ready");
    return cls.join(" ");
  }
  function severity(c) {
    if (c.below_floor) return 0;
    if (c.drift || (c.remediation && c.remediation.degraded)) return 1;
    if (c.production && !c.production.ready) return 2;
    if ((c.findings && c.findings.length) || c.needs_restart) return 3;
    return 4;
  }
  var glyphs = {
    restart: "M-4.5 0h9L0 7.5z",
    signal: "M-3.6 3.8a3.6 3.6 0 1 0 7.2 0a3.6 3.6 0 1 0-7.2 0z",
    relabel: "M0 0L4.2 4L0 8L-4.2 4z",
    issue: "M-3.4 0.5h6.8v6.8h-6.8z"
  };
  function glyph(kind) { return glyphs[kind] || "M-1.5 0h3v8h-3z"; }
  function markKind(a) { return glyphs[a] ? a : "other"; }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t) {
    var d = new Date(t);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function markTitle(e) {
    var action = e.action === "issue" && e.reason === "renew-due" ? "renew" : e.action;
    return clock(e.at) + " " + action + " " + e.result + (e.reason ? ": " + e.reason : "");
  }
  function pct(t, w) {
    var total = w.now - w.since;
    if (total <= 0) return 0;
    return Math.min(Math.max((ms(t) - w.since) / total * 100, 0), 100);
  }
  function pctText(p) { return p.toFixed(2) + "%"; }

  // ui is what the operator chose; it survives every refresh, and lives in
  // the URL's fragment (#q=parser&level=plain&drift=1&sort=expiry, and
  // open=all, none or a list of services) so a view can be linked to.
  var ui = { text: "", level: "", driftOnly: false, sort: "problems", open: "", expanded: {}, allExpiry: false };
  var last = null;

  function readHash() {
    var h = new URLSearchParams(location.hash.replace(/^#/, ""));
    ui.text = (h.get("q") || "").trim().toLowerCase();
    ui.level = h.get("level") || "";
    ui.driftOnly = h.get("drift") === "1";
    ui.sort = orders[h.get("sort")] ? h.get("sort") : "problems";
    ui.open = "";
    ui.expanded = {};
    var open = h.get("open") || "";
    if (open === "all" || open === "none") ui.open = open;
    else if (open) open.split(",").forEach(function (svc) { ui.expanded[svc] = true; });
    document.getElementById("filter").value = h.get("q") || "";
    document.getElementById("level").value = ui.level;
    document.getElementById("drift-only").checked = ui.driftOnly;
    document.getElementById("sort").value = ui.sort;
  }
  function writeHash() {
    var h = new URLSearchParams();
    if (ui.text) h.set("q", ui.text);
    if (ui.level) h.set("level", ui.level);
    if (ui.driftOnly) h.set("drift", "1");
    if (ui.sort !== "problems") h.set("sort", ui.sort);
    var opened = Object.keys(ui.expanded).filter(function (svc) { return ui.expanded[svc]; });
    if (ui.open) h.set("open", ui.open);
    else if (opened.length) h.set("open", opened.join(","));
    var frag = h.toString();
    history.replaceState(null, "", frag ? "#" + frag : location.pathname + location.search);
  }

  // timeline is the twin of timeline in dashboard_view.go, merge included.
  function timeline(spans, events, ca, w, merge) {
    var s = svg("svg", { "class": "tl", width: "100%", height: "24", role: "img" });
    ["25%", "50%", "75%"].forEach(function (x) {
      s.appendChild(svg("line", { "class": "grid", x1: x, x2: x, y1: "6", y2: "22" }));
    });
    (spans || []).forEach(function (sp) {
      var x = pct(sp.from, w), end = pct(sp.to, w);
      s.appendChild(svg("rect", { "class": "band lvl-" + sp.level, x: pctText(x), width: pctText(end - x), y: "9", height: "12" },
        sp.level + " " + clock(sp.from) + "\u2013" + clock(sp.to)));
    });
    if (ca) s.appendChild(svg("line", { "class": "ca-mark", x1: ca.x, x2: ca.x, y1: "0", y2: "24" }, ca.title));
    var marks = [];
    (events || []).forEach(function (e) {
      var t = ms(e.at);
      if (t < w.since || t > w.now) return;
      var x = pct(e.at, w), kind = markKind(e.action);
      for (var j = marks.length - 1; merge && j >= 0; j--) {
        if (marks[j].kind !== kind || marks[j].result !== e.result) continue;
        if (x - marks[j].x < 0.5) { marks[j].n++; return; }
        break;
      }
      marks.push({ x: x, kind: kind, result: e.result, title: markTitle(e), n: 1 });
    });
    marks.forEach(function (mk) {
      var m = svg("svg", { "class": "mark act-" + mk.kind + " res-" + mk.result, x: pctText(mk.x), y: "0", overflow: "visible" },
        mk.title + (mk.n > 1 ? " (\u00d7" + mk.n + ")" : ""));
      m.insertBefore(svg("line", { x1: "0", x2: "0", y1: "7", y2: "22" }), m.firstChild);
      m.insertBefore(svg("path", { d: glyph(mk.kind) }), m.lastChild);
      s.appendChild(m);
    });
    return s;
  }

  function caMark(r, w) {
    if (!r || !r.phase || r.phase === "idle" || !isSet(r.since)) return null;
    var t = ms(r.since);
    if (t < w.since || t > w.now) return null;
    return { x: pctText(pct(r.since, w)), title: clock(r.since) + " CA rollover: " + r.phase };
  }

  function levelChip(level) { return el("span", "lvl lvl-" + level, level); }
  function badge(cls, text) { return el("span", "badge " + cls, text); }
  function findingChips(td, fs) {
    fs.forEach(function (f) {
      var s = el("span", "finding " + f.source, f.reason);
      if (f.message) s.title = f.message;
      td.appendChild(s);
    });
  }

  // group is one service with its containers (sorted by severity) and what
  // its row shows, like pageGroups in dashboard_view.go.
  function groups(rep) {
    var byService = {};
    rep.containers.forEach(function (c) { (byService[c.service] = byService[c.service] || []).push(c); });
    return rep.services.map(function (s) {
      var cs = byService[s.service] || [];
      var g = { s: s, cs: cs, findings: [], events: [], lastAction: "", lastActionAt: "", severity: 4, changed: 0 };
      var seen = {};
      cs.forEach(function (c) {
        g.severity = Math.min(g.severity, severity(c));
        g.events = g.events.concat(c.history || []);
        (c.findings || []).forEach(function (f) { if (!seen[f.reason]) { seen[f.reason] = true; g.findings.push(f); } });
        var r = c.remediation || {};
        if (r.last_action && ms(r.last_action_at) > ms(g.lastActionAt)) { g.lastAction = r.last_action; g.lastActionAt = r.last_action_at; }
        g.changed = Math.max(g.changed, changedAt(c));
      });
      g.events.sort(function (a, b) { return ms(a.at) - ms(b.at); });
      g.defaultExpanded = cs.length > 1 && g.severity < 4;
      return g;
    });
  }
  function changedAt(c) { return Math.max(ms(c.observed_since), ms((c.remediation || {}).last_action_at)); }

  function matches(c) {
    if (ui.level && c.observed !== ui.level) return false;
    if (ui.driftOnly && !c.drift && !c.below_floor) return false;
    if (!ui.text) return true;
    var hay = [c.service, c.container, c.container_id.slice(0, 12), c.node || ""];
    (c.findings || []).forEach(function (f) { hay.push(f.reason); });
    ((c.production || {}).findings || []).forEach(function (f) { hay.push(f.code); });
    return hay.join(" ").toLowerCase().indexOf(ui.text) >= 0;
  }
  function filtering() { return ui.text !== "" || ui.level !== "" || ui.driftOnly; }

  var orders = {
    problems: function (a, b) { return a.severity - b.severity || cmpName(a, b); },
    name: cmpName,
    expiry: function (a, b) { return expiryKey(a) - expiryKey(b) || cmpName(a, b); },
    changed: function (a, b) { return b.changed - a.changed || cmpName(a, b); }
  };
  function cmpName(a, b) { return a.s.service < b.s.service ? -1 : a.s.service > b.s.service ? 1 : 0; }
  function expiryKey(g) { return ms(g.s.expiry.bundle_not_after) || Number.MAX_VALUE; }
  var containerOrders = {
    problems: function (a, b) { return severity(a) - severity(b); },
    name: function () { return 0; },
    expiry: function (a, b) { return (ms(a.bundle.not_after) || Number.MAX_VALUE) - (ms(b.bundle.not_after) || Number.MAX_VALUE); },
    changed: function (a, b) { return changedAt(b) - changedAt(a); }
  };

  function groupRow(g, expanded, w, ca, now) {
    var s = g.s, tr = el("tr", groupClass(s));
    tr.setAttribute("data-group", s.service);
    tr.setAttribute("data-expanded", String(expanded));
    var td = el("td", "service");
    var btn = el("button", "toggle", expanded ? "\u25be" : "\u25b8");
    btn.type = "button";
    btn.setAttribute("aria-expanded", String(expanded));
    btn.setAttribute("aria-label", "containers of " + s.service);
    td.appendChild(btn);
    td.appendChild(document.createTextNode(s.service));
    if (s.containers > 1) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "n", "\u00d7" + s.containers)); }
    else if (g.cs.length) td.appendChild(el("span", "sub", g.cs[0].container));
    tr.appendChild(td);

    td = el("td", "level");
    td.appendChild(levelChip(s.observed));
    var many = s.containers > 1;
    if (s.drift) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("drift-badge", "DRIFT" + (many ? " " + s.drift : ""))); }
    if (s.below_floor) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("floor-badge", "BELOW FLOOR" + (many ? " " + s.below_floor : ""))); }
    if (s.degraded) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("degraded-badge", "DEGRADED")); }
    tr.appendChild(td);

    td = el("td", "tlcell");
    td.appendChild(timeline(s.timeline, g.events, ca, w, true));
    tr.appendChild(td);

    td = el("td", "findings");
    findingChips(td, g.findings);
    if (!g.findings.length) td.appendChild(el("span", "muted", "\u2014"));
    tr.appendChild(td);

    td = el("td", "prod");
    if (s.production_ready === s.containers) td.appendChild(el("span", "prod-ok", "ready"));
    else td.appendChild(el("span", "prod-bad", s.production_ready + "/" + s.containers + " ready"));
    tr.appendChild(td);

    tr.appendChild(el("td", "expires tone-" + daysTone(s.expiry.days_left), daysText(s.expiry.days_left)));

    td = el("td", "action");
    if (g.lastAction) {
      td.appendChild(el("span", "act", g.lastAction));
      td.appendChild(document.createTextNode(" "));
      td.appendChild(el("span", "muted", ago(g.lastActionAt, now)));
    } else td.appendChild(el("span", "muted", "\u2014"));
    tr.appendChild(td);
    return tr;
  }

  function containerRow(c, w, ca, now) {
    var tr = el("tr", rowClass(c));
    tr.setAttribute("data-service", c.service);
    tr.setAttribute("data-container", c.container);
    var td = el("td", "container", c.container);
    if (c.node) td.appendChild(el("span", "sub", " on node " + c.node));
    td.title = c.container_id;
    tr.appendChild(td);

    td = el("td", "level");
    td.appendChild(levelChip(c.observed));
    if (c.drift) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("drift-badge", "DRIFT")); }
    if (c.below_floor) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("floor-badge", "BELOW FLOOR")); }
    td.appendChild(el("span", "want", "want " + (c.desired || "\u2014") + " \u00b7 floor " + (c.floor || "\u2014")));
    tr.appendChild(td);

    td = el("td", "tlcell");
    td.appendChild(timeline(c.timeline, c.history, ca, w, false));
    tr.appendChild(td);

    td = el("td", "findings");
    findingChips(td, c.findings || []);
    if (!c.findings || c.findings.length === 0) td.appendChild(el("span", "muted", "\u2014"));
    if (c.needs_restart) {
      var nr = el("span", "finding restart", "needs-restart");
      if (c.needs_restart_reason) nr.title = c.needs_restart_reason;
      td.appendChild(nr);
    }
    tr.appendChild(td);

    td = el("td", "prod");
    var p = c.production || { findings: [] };
    if (p.ready) td.appendChild(el("span", "prod-ok", "ready"));
    p.findings.forEach(function (f) {
      var s = el("span", "code" + (f.blocking ? " blocking" : ""), f.code);
      s.title = f.message;
      td.appendChild(s);
    });
    tr.appendChild(td);

    var b = c.bundle || {};
    td = el("td", "expires tone-" + daysTone(b.days_left), daysText(b.days_left));
    if (isSet(b.not_after)) td.title = b.not_after;
    tr.appendChild(td);

    var r = c.remediation || {};
    td = el("td", "action");
    if (r.last_action) {
      td.appendChild(el("span", "act", r.last_action));
      td.appendChild(document.createTextNode(" "));
      td.appendChild(el("span", "muted", ago(r.last_action_at, now)));
    } else td.appendChild(el("span", "muted", "\u2014"));
    if (r.attempts) td.appendChild(el("span", "budget muted", "budget " + r.budget_left + "/" + r.budget + " left"));
    if (r.degraded) {
      var dg = el("span", "badge degraded-badge", "DEGRADED");
      dg.title = r.degraded;
      td.appendChild(dg);
      td.appendChild(el("span", "why", r.degraded));
    }
    tr.appendChild(td);
    return tr;
  }

  // renderTable draws the groups that match the filter; a collapsed
  // group's containers are not built at all, so a thousand containers cost
  // what the open groups show.
  function renderTable(rep) {
    var s = rep.summary, now = s.generated_at;
    var w = { since: ms(s.timeline_since), now: ms(now) };
    var ca = caMark(s.ca_rollover, w);
    var body = document.getElementById("rows");
    var frag = document.createDocumentFragment();
    var gs = groups(rep).sort(orders[ui.sort] || orders.problems);
    var shownGroups = 0, shownContainers = 0, f = filtering();
    gs.forEach(function (g) {
      var cs = f ? g.cs.filter(matches) : g.cs;
      if (!cs.length) return;
      shownGroups++;
      shownContainers += cs.length;
      var open = ui.expanded[g.s.service];
      if (open === undefined) open = ui.open ? ui.open === "all" : f || g.defaultExpanded;
      frag.appendChild(groupRow(g, open, w, ca, now));
      if (!open) return;
      cs.slice().sort(containerOrders[ui.sort] || containerOrders.problems).forEach(function (c) {
        frag.appendChild(containerRow(c, w, ca, now));
      });
    });
    if (!shownGroups) {
      var tr = el("tr", "empty");
      var td = el("td", "", rep.containers.length ? "no container matches the filter" : "no managed containers yet");
      td.colSpan = 7;
      tr.appendChild(td);
      frag.appendChild(tr);
    }
    body.replaceChildren(frag);
    document.getElementById("shown").textContent = f
      ? shownContainers + " of " + rep.containers.length + " containers in " + shownGroups + " of " + gs.length + " services"
      : rep.containers.length + " containers in " + gs.length + " services";
    document.getElementById("status").setAttribute("data-rendered", "js");
  }

  function renderCounts(s) {
    var box = document.getElementById("counts");
    box.replaceChildren();
    var ls = levels.slice();
    if (s.counts.unknown > 0) ls.push("unknown");
    ls.forEach(function (l) {
      var chip = el("span", "count lvl-" + l + (s.counts[l] ? "" : " zero"));
      chip.setAttribute("data-level", l);
      chip.appendChild(el("b", "", s.counts[l] || 0));
      chip.appendChild(document.createTextNode(" " + l));
      box.appendChild(chip);
    });
  }

  function metaItem(k, label, text, cls, title) {
    var d = el("div");
    d.appendChild(el("dt", "", label));
    var dd = el("dd", cls || "", text);
    dd.setAttribute("data-k", k);
    if (title) dd.title = title;
    d.appendChild(dd);
    return d;
  }

  function renderMeta(s) {
    var m = document.getElementById("meta");
    m.replaceChildren();
    m.appendChild(metaItem("mode", "mode", s.mode));
    m.appendChild(metaItem("environment", "environment", s.environment));
    if (s.project) m.appendChild(metaItem("project", "project", s.project));
    var ca = isSet(s.ca_not_after) ? s.ca_not_after.slice(0, 10) + " (" + daysText(s.ca_days_left) + ")" : "\u2014";
    m.appendChild(metaItem("ca", "CA expires", ca, "tone-" + daysTone(s.ca_days_left), s.ca_subject));
    var r = s.ca_rollover;
    if (r && r.phase && r.phase !== "idle") m.appendChild(metaItem("rollover", "CA rollover", r.phase + " " + r.done + "/" + r.total, "tone-warn"));
    if (s.version) m.appendChild(metaItem("version", "version", s.version));
    var u = metaItem("updated", "updated", clock(s.generated_at) + " UTC");
    u.lastChild.id = "updated";
    m.appendChild(u);
  }

  function renderAlerts(s, err) {
    var a = document.getElementById("alerts");
    a.replaceChildren();
    if (err) a.appendChild(el("p", "alert bad", "status unavailable: " + err + " (showing the last good data)"));
    if (!s) return;
    if (s.below_floor) a.appendChild(el("p", "alert bad", s.below_floor + " container(s) below their floor"));
    if (s.drift) a.appendChild(el("p", "alert warn", s.drift + " container(s) drifted from their desired level"));
  }

  // renderReadiness is the twin of notReady and blockingCodes
  // (dashboard_view.go): one line per service and first blocking reason.
  function renderReadiness(rep) {
    var p = rep.summary.production;
    var chip = document.getElementById("ready");
    chip.textContent = p.verdict;
    chip.className = "ready " + (p.ready === p.total ? "ok" : "bad");
    var codes = Object.keys(p.blocking).sort(function (a, b) { return p.blocking[b] - p.blocking[a] || (a < b ? -1 : a > b ? 1 : 0); });
    var box = document.getElementById("blocking");
    box.replaceChildren.apply(box, codes.map(function (code) {
      var c = el("span", "code blocking", code + " ");
      c.appendChild(el("b", "", p.blocking[code]));
      return c;
    }));
    var entries = [], index = {}, more = 0;
    rep.containers.forEach(function (c) {
      var f = c.production.ready ? null : c.production.findings.filter(function (f) { return f.blocking; })[0];
      if (!f) return;
      var key = c.service + "\u0000" + c.observed + "\u0000" + f.code;
      if (key in index) {
        if (index[key] < entries.length) entries[index[key]].containers.push(c.container);
        return;
      }
      index[key] = Object.keys(index).length;
      if (entries.length < notReadyShown) entries.push({ c: c, f: f, containers: [c.container] });
      else more++;
    });
    var items = entries.map(function (e) {
      var li = el("li");
      li.setAttribute("data-service", e.c.service);
      li.appendChild(el("b", "", e.c.service));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(e.containers.length > 1 ? el("span", "muted", "\u00d7" + e.containers.length) : el("span", "mono muted", e.containers[0]));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(levelChip(e.c.observed));
      li.appendChild(document.createTextNode(" \u2192 "));
      li.appendChild(levelChip(e.c.production.floor));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("code", "", e.f.code));
      li.appendChild(document.createTextNode(" "));
      li.appendChild(el("span", "why", e.f.message));
      return li;
    });
    if (more) items.push(el("li", "muted", "and " + more + " more (filter the table by a code)"));
    var list = document.getElementById("not-ready");
    list.replaceChildren.apply(list, items);
    document.getElementById("readiness").hidden = items.length === 0;
  }

  function renderExpiry(rep) {
    var now = ms(rep.summary.generated_at);
    var ss = rep.services.slice().sort(function (a, b) {
      var ta = ms(a.expiry.bundle_not_after) || Number.MAX_VALUE, tb = ms(b.expiry.bundle_not_after) || Number.MAX_VALUE;
      return ta - tb || (a.service < b.service ? -1 : a.service > b.service ? 1 : 0);
    });
    var scale = 90;
    ss.forEach(function (s) { if (s.expiry.days_left !== undefined && s.expiry.days_left > scale) scale = s.expiry.days_left; });
    function dayPct(t) {
      if (!isSet(t)) return "0%";
      return Math.min(Math.max((ms(t) - now) / 864e5 / scale * 100, 0), 100).toFixed(2) + "%";
    }
    var soonest = document.getElementById("expiry-soonest");
    soonest.textContent = ss.length ? "soonest: " + ss[0].service + ", " + daysText(ss[0].expiry.days_left) : "";
    if (ui.text) ss = ss.filter(function (s) { return s.service.toLowerCase().indexOf(ui.text) >= 0; });
    var total = ss.length;
    if (!ui.allExpiry) ss = ss.slice(0, expiryShown);
    var body = document.getElementById("expiry-rows");
    var frag = document.createDocumentFragment();
    ss.forEach(function (s) {
      var e = s.expiry, tr = el("tr");
      tr.setAttribute("data-expiry", s.service);
      tr.appendChild(el("td", "service", s.service));
      tr.appendChild(isSet(e.bundle_not_after) ? el("td", "", e.bundle_not_after.slice(0, 10)) : muted());
      var td = el("td", "barcell");
      var bar = svg("svg", { "class": "bar", width: "100%", height: "14" });
      bar.appendChild(svg("rect", { "class": "track", x: "0", y: "3", width: "100%", height: "8" }));
      if (e.days_left !== undefined) bar.appendChild(svg("rect", { "class": "fill tone-" + daysTone(e.days_left), x: "0", y: "3", width: dayPct(e.bundle_not_after), height: "8" }));
      if (isSet(e.renew_at)) bar.appendChild(svg("line", { "class": "renew", x1: dayPct(e.renew_at), x2: dayPct(e.renew_at), y1: "0", y2: "14" }));
      td.appendChild(bar);
      td.appendChild(el("b", "tone-" + daysTone(e.days_left), daysText(e.days_left)));
      tr.appendChild(td);
      td = el("td");
      if (isSet(e.renew_at)) {
        td.appendChild(document.createTextNode(e.renew_at.slice(0, 10) + " "));
        td.appendChild(el("span", "muted", "(" + renewIn(e.renew_at, now) + ")"));
      } else td.appendChild(el("span", "muted", "\u2014"));
      tr.appendChild(td);
      td = el("td");
      if (isSet(e.served_not_after)) {
        td.appendChild(document.createTextNode(e.served_not_after.slice(0, 10) + " "));
        td.appendChild(el("span", "muted", "(" + daysText(e.served_days_left) + ")"));
      } else td.appendChild(el("span", "muted", "\u2014"));
      if (e.serves_older) { td.appendChild(document.createTextNode(" ")); td.appendChild(badge("stale-badge", e.serves_older + " serving an older leaf")); }
      tr.appendChild(td);
      frag.appendChild(tr);
    });
    if (total > ss.length) {
      var more = el("tr"), cell = el("td");
      cell.colSpan = 5;
      var b = el("button", "", "show all " + total + " services");
      b.id = "more";
      b.type = "button";
      cell.appendChild(b);
      more.appendChild(cell);
      frag.appendChild(more);
    }
    body.replaceChildren(frag);
  }
  function muted() { var td = el("td"); td.appendChild(el("span", "muted", "\u2014")); return td; }

  function render(rep) {
    var started = performance.now(), s = rep.summary;
    renderCounts(s);
    renderMeta(s);
    renderAlerts(s, null);
    renderReadiness(rep);
    renderTable(rep);
    renderExpiry(rep);
    // How long a refresh takes to draw, for the tests at a thousand containers.
    document.body.setAttribute("data-render-ms", String(Math.round(performance.now() - started)));
  }

  // Controls re-render from the last answer; they never fetch. A new
  // filter forgets which groups were opened by hand.
  function rerender() { writeHash(); if (last) { renderTable(last); renderExpiry(last); } }
  function refilter() { ui.expanded = {}; ui.open = ""; rerender(); }
  var typing = null;
  document.getElementById("filter").addEventListener("input", function (e) {
    clearTimeout(typing);
    typing = setTimeout(function () { ui.text = e.target.value.trim().toLowerCase(); refilter(); }, 120);
  });
  document.getElementById("level").addEventListener("change", function (e) { ui.level = e.target.value; refilter(); });
  document.getElementById("drift-only").addEventListener("change", function (e) { ui.driftOnly = e.target.checked; refilter(); });
  document.getElementById("sort").addEventListener("change", function (e) { ui.sort = e.target.value; rerender(); });
  function setAll(open) { ui.expanded = {}; ui.open = open; rerender(); }
  document.getElementById("expand-all").addEventListener("click", function () { setAll("all"); });
  document.getElementById("collapse-all").addEventListener("click", function () { setAll("none"); });
  document.getElementById("rows").addEventListener("click", function (e) {
    var tr = e.target.closest("tr.group");
    if (!tr || e.target.closest("td.findings, td.prod")) return;
    ui.expanded[tr.getAttribute("data-group")] = tr.getAttribute("data-expanded") !== "true";
    rerender();
  });
  document.getElementById("expiry-rows").addEventListener("click", function (e) {
    if (e.target.id === "more") { ui.allExpiry = true; rerender(); }
  });

  readHash();
  window.addEventListener("hashchange", function () { readHash(); if (last) { renderTable(last); renderExpiry(last); } });
  var refreshes = 0;
  function tick() {
    // Relative URL, so the page also works behind a path-prefixing proxy.
    fetch("api/v1/status?since=1h", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error(body.error || resp.statusText);
          if (body.api_version !== "v1") throw new Error("unsupported api_version " + body.api_version);
          return body;
        });
      })
      .then(function (rep) {
        last = rep;
        render(rep);
        document.body.setAttribute("data-refreshes", String(++refreshes));
      })
      .catch(function (e) { renderAlerts(last && last.summary, e.message || String(e)); });
  }
  tick();
  setInterval(tick, refresh);
})();

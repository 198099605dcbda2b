"use strict";
// Re-renders the server-rendered table from /api/v1/status. Builds every
// node with createElement/textContent, never innerHTML: findings carry
// messages from probed services, which are not trusted markup.
(function () {
  var refresh = parseInt(document.body.getAttribute("data-refresh"), 10) || 5000;
  var levels = ["mtls", "tls", "plain", "down"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function isSet(t) { return t && t.indexOf("0001-01-01") !== 0; }
  // Twins of daysText, daysTone, ago and rowClass in dashboard.go.
  function daysText(d) { return d === undefined || d === null ? "\u2014" : d < 0 ? "expired" : d + " d"; }
  function daysTone(d) { return d === undefined || d === null ? "muted" : d < 7 ? "bad" : d < 30 ? "warn" : "ok"; }
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
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function clock(t) {
    var d = new Date(t);
    return pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC";
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
    if (s.version) m.appendChild(metaItem("version", "version", s.version));
    var u = metaItem("updated", "updated", clock(s.generated_at));
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

  function renderRow(c, now) {
    var tr = el("tr", rowClass(c));
    tr.setAttribute("data-service", c.service);
    tr.setAttribute("data-container", c.container);
    tr.appendChild(el("td", "service", c.service));
    var ct = el("td", "container", c.container);
    ct.title = c.container_id;
    tr.appendChild(ct);

    var td = el("td");
    td.appendChild(el("span", "lvl lvl-" + (c.desired || "unknown"), c.desired || "\u2014"));
    tr.appendChild(td);

    td = el("td");
    td.appendChild(el("span", "lvl lvl-" + c.observed, c.observed));
    if (c.drift) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "badge drift-badge", "DRIFT")); }
    if (c.below_floor) { td.appendChild(document.createTextNode(" ")); td.appendChild(el("span", "badge floor-badge", "BELOW FLOOR")); }
    tr.appendChild(td);

    td = el("td");
    td.appendChild(el("span", "floor", c.floor || "\u2014"));
    tr.appendChild(td);

    td = el("td", "findings");
    (c.findings || []).forEach(function (f) {
      var s = el("span", "finding " + f.source, f.reason);
      if (f.message) s.title = f.message;
      td.appendChild(s);
    });
    if (!c.findings || c.findings.length === 0) td.appendChild(el("span", "muted", "\u2014"));
    if (c.needs_restart) {
      var nr = el("span", "finding restart", "needs-restart");
      if (c.needs_restart_reason) nr.title = c.needs_restart_reason;
      td.appendChild(nr);
    }
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
    } else {
      td.appendChild(el("span", "muted", "\u2014"));
    }
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

  function render(rep) {
    var s = rep.summary;
    renderCounts(s);
    renderMeta(s);
    renderAlerts(s, null);
    var body = document.getElementById("rows");
    body.replaceChildren();
    rep.containers.forEach(function (c) { body.appendChild(renderRow(c, s.generated_at)); });
    if (rep.containers.length === 0) {
      var tr = el("tr", "empty");
      var td = el("td", "", "no managed containers yet");
      td.colSpan = 8;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    document.getElementById("status").setAttribute("data-rendered", "js");
  }

  var last = null;
  function tick() {
    // Relative URL, so the page also works behind a path-prefixing proxy.
    fetch("api/v1/status", { cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (resp) {
        return resp.json().then(function (body) {
          if (!resp.ok) throw new Error(body.error || resp.statusText);
          if (body.api_version !== "v1") throw new Error("unsupported api_version " + body.api_version);
          return body;
        });
      })
      .then(function (rep) { last = rep; render(rep); })
      .catch(function (e) { renderAlerts(last && last.summary, e.message || String(e)); });
  }
  tick();
  setInterval(tick, refresh);
})();

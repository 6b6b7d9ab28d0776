// The member centre (/h5/{tenant}/me): profile, consents, tier and points, bottles, orders, lottery
// entries, export and erasure. Plain JS; the consumer token from localStorage as on the other H5 pages.
// Every value from the server is written with textContent.
(function () {
  "use strict";

  var root = document.getElementById("member-centre");
  if (!root) return;
  var tenant = root.getAttribute("data-tenant");
  var storageKey = "zt_consumer_token:" + tenant;
  var token = window.localStorage.getItem(storageKey);
  var messages = JSON.parse(document.getElementById("member-messages").textContent);

  function text(key, values) {
    return (messages[key] || key).replace(/\{(\w+)\}/g, function (all, name) {
      return values && name in values ? values[name] : all;
    });
  }

  function call(method, path, body) {
    return fetch("/api/v1" + path, {
      method: method,
      headers: { authorization: "Bearer " + token, "content-type": "application/json", accept: "application/json" },
      body: body ? JSON.stringify(body) : undefined,
    }).then(
      function (r) {
        var type = r.headers.get("content-type") || "";
        var parse = type.indexOf("json") >= 0 ? r.json() : Promise.resolve(null);
        return parse.then(function (data) { return { ok: r.ok, status: r.status, body: data }; });
      },
      function () { return { ok: false, status: 0, body: { detail: text("network") } }; }
    );
  }

  function item(list, main, sub) {
    var li = document.createElement("li");
    var strong = document.createElement("span");
    strong.textContent = main;
    li.appendChild(strong);
    if (sub) {
      var small = document.createElement("span");
      small.className = "muted small";
      small.textContent = " " + sub;
      li.appendChild(small);
    }
    list.appendChild(li);
  }

  function empty(list, key) {
    if (!list.children.length) item(list, text(key));
  }

  function day(iso) { return iso ? iso.slice(0, 10) : ""; }

  function showMe(me) {
    document.getElementById("not-member").hidden = me.is_member;
    document.getElementById("not-member").textContent = text("not_member");
    document.getElementById("member-since").textContent = me.member_since ? day(me.member_since) : "";
    var shown = Object.keys(me.profile).map(function (k) { return me.profile[k]; });
    document.getElementById("profile-shown").textContent = shown.join(" · ");
    var form = document.getElementById("profile-form");
    ["birthday", "gender", "city"].forEach(function (name) {
      if (me.profile[name]) form.elements[name].value = me.profile[name];
    });
    me.consents.forEach(function (c) {
      var box = root.querySelector('input[data-purpose="' + c.purpose + '"]');
      if (box) box.checked = !!c.granted;
    });
  }

  function showPoints(body) {
    document.getElementById("points-card").hidden = false;
    document.getElementById("points-balance").textContent = String(body.balance);
    var soon = (body.expiring || [])[0];
    document.getElementById("points-expiry").textContent = soon ? text("points_expiring", { points: soon.points, date: day(soon.expires_at) }) : "";
    var history = document.getElementById("points-history");
    history.textContent = "";
    (body.history || []).slice(0, 10).forEach(function (h) {
      item(history, (h.amount > 0 ? "+" : "") + h.amount + " " + text(h.kind), day(h.posted_at));
    });
    empty(history, "points_none");
  }

  function loadLoyalty() {
    call("GET", "/consumer/members/me/memberships").then(function (r) {
      if (!r.ok || !Array.isArray(r.body) || !r.body.length) return;
      var m = r.body[0];
      document.getElementById("tier-card").hidden = false;
      document.getElementById("tier-name").textContent = m.tier_name || m.program_name;
      if (m.next_tier_code && m.next_tier_needs) {
        document.getElementById("tier-progress").textContent = text("tier_next", { missing: m.next_tier_needs, tier: m.next_tier_name || m.next_tier_code });
      }
      var benefits = document.getElementById("tier-benefits");
      if (m.discount_bp) item(benefits, text("discount", { percent: (m.discount_bp / 100).toFixed(m.discount_bp % 100 ? 1 : 0) }));
      if (m.birthday_gift) item(benefits, text("birthday_gift"));
      if (m.free_shipping) item(benefits, text("free_shipping"));
    });
    call("GET", "/consumer/members/me/points").then(function (r) {
      if (r.ok && r.body) showPoints(r.body);
    });
  }

  document.getElementById("sign-in-today").addEventListener("click", function () {
    var status = document.getElementById("sign-in-status");
    call("POST", "/consumer/members/me/sign-in").then(function (r) {
      if (!r.ok) { status.textContent = (r.body && r.body.detail) || text("failed"); return; }
      status.textContent = text(r.body.is_new ? "signed_in_today" : "signed_in_already", { streak: r.body.streak, earned: r.body.earned });
      call("GET", "/consumer/members/me/points").then(function (p) { if (p.ok) showPoints(p.body); });
    });
  });

  function loadLists() {
    call("GET", "/consumer/members/me/bottles").then(function (r) {
      var list = document.getElementById("bottles");
      if (r.ok) r.body.items.forEach(function (b) { item(list, (b.product || b.serial) + " · " + text(b.verdict || "genuine"), day(b.checked_at) + (b.city ? " " + b.city : "")); });
      empty(list, "no_bottles");
    });
    call("GET", "/consumer/sales/orders").then(function (r) {
      var list = document.getElementById("orders");
      if (r.ok) r.body.items.slice(0, 5).forEach(function (o) { item(list, o.order_no + " · ¥" + (o.amount_fen / 100).toFixed(2), o.state); });
      empty(list, "no_orders");
    });
    call("GET", "/consumer/lottery/entries").then(function (r) {
      var list = document.getElementById("entries");
      var rows = r.ok ? (Array.isArray(r.body) ? r.body : r.body.items || []) : [];
      rows.slice(0, 5).forEach(function (e) { item(list, e.product_name || e.session_name || e.id, e.result || e.status || ""); });
      empty(list, "no_entries");
    });
  }

  if (!token) { document.getElementById("need-sign-in").hidden = false; return; }
  // Bottles this phone checked before signing in (the scan page remembers them) become the member's.
  function claim() {
    var key = "zt_unclaimed_codes:" + tenant;
    var codes = [];
    try { codes = JSON.parse(window.localStorage.getItem(key) || "[]"); } catch (ignored) { codes = []; }
    if (!codes.length) return Promise.resolve(null);
    return call("POST", "/consumer/members/me/claim", { codes: codes.slice(-20) }).then(function (r) {
      if (r.ok || r.status === 422) window.localStorage.removeItem(key);
      if (r.ok && (r.body.points || r.body.red_packets)) {
        document.getElementById("claim-status").textContent = text("claimed", { bottles: r.body.scans, points: r.body.points });
        document.getElementById("claim-status").hidden = false;
      }
      return r;
    });
  }

  call("GET", "/consumer/members/me").then(function (r) {
    if (!r.ok) { document.getElementById("need-sign-in").hidden = false; return; }
    root.hidden = false;
    showMe(r.body);
    claim().then(function () {
      call("GET", "/consumer/members/me").then(function (again) { if (again.ok) showMe(again.body); });
      loadLoyalty();
      loadLists();
    });
  });

  document.getElementById("profile-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var form = event.target;
    var body = {};
    ["name", "birthday", "gender", "city", "address"].forEach(function (name) {
      var value = form.elements[name].value.trim();
      if (value) body[name] = value;
    });
    var status = document.getElementById("profile-status");
    call("PUT", "/consumer/members/me/profile", body).then(function (r) {
      if (!r.ok) { status.textContent = (r.body && r.body.detail) || text("failed"); return; }
      showMe(r.body);
      var kept = body.city && r.body.profile.city && r.body.profile.city !== body.city;
      status.textContent = kept ? text("kept_verified") : text("saved");
      form.elements.name.value = "";
      form.elements.address.value = "";
    });
  });

  root.querySelectorAll("input[data-purpose]").forEach(function (box) {
    box.addEventListener("change", function () {
      var status = document.getElementById("consent-status");
      call("PUT", "/consumer/members/me/consents/" + box.getAttribute("data-purpose"), {
        granted: box.checked, text_version: messages.text_version,
      }).then(function (r) {
        status.textContent = r.ok ? text("saved") : (r.body && r.body.detail) || text("failed");
        if (!r.ok) box.checked = !box.checked;
      });
    });
  });

  document.getElementById("export-data").addEventListener("click", function () {
    var status = document.getElementById("rights-status");
    call("GET", "/consumer/members/me/export").then(function (r) {
      if (!r.ok) { status.textContent = (r.body && r.body.detail) || text("failed"); return; }
      var blob = new Blob([JSON.stringify(r.body, null, 2)], { type: "application/json" });
      var link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "my-data-" + tenant + ".json";
      document.body.appendChild(link);
      link.click();
      link.remove();
    });
  });

  document.getElementById("erase-data").addEventListener("click", function () {
    if (!window.confirm(text("erase_confirm"))) return;
    var status = document.getElementById("rights-status");
    call("POST", "/consumer/members/me/erase", { reason: "" }).then(function (r) {
      if (!r.ok) { status.textContent = (r.body && r.body.detail) || text("failed"); return; }
      window.localStorage.removeItem(storageKey);
      root.hidden = true;
      var done = document.getElementById("not-member");
      done.textContent = text("erased");
      done.hidden = false;
      root.parentNode.insertBefore(done, root);
    });
  });
})();

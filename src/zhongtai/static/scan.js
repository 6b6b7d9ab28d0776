/*
 * The scan page's PIN form (authenticity/h5/scan.html), progressively enhanced: without JavaScript it
 * is a plain form POST; with it, the browser is asked for its location (only when the consumer keeps
 * "share my location" ticked, WGS-84 as the Geolocation API gives it, 4 s at most) and the PIN goes to
 * the JSON API; the verdict is shown in place, and after a first genuine check the page's panels
 * are fetched again (`?part=panels`) so that the red packet it earned appears without a reload.
 */
(function () {
  "use strict";
  const form = document.getElementById("pin-form");
  if (!form || !window.fetch) return;
  const messages = JSON.parse(form.dataset.messages || "{}");
  const box = document.getElementById("verdict");
  const errorLine = form.querySelector('[data-part="error"]');
  const button = form.querySelector('button[type="submit"]');

  function locate() {
    if (!form.elements.share_location.checked || !navigator.geolocation) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), 4000);
      navigator.geolocation.getCurrentPosition(
        (position) => {
          clearTimeout(timer);
          resolve(position.coords);
        },
        () => {
          clearTimeout(timer);
          resolve(null);
        },
        { enableHighAccuracy: false, timeout: 4000, maximumAge: 60000 },
      );
    });
  }

  // A signed-in consumer's checks are theirs at once (bearer token, as the H5 pages keep it); checks made
  // before signing in are remembered on this phone for the member centre to claim.
  const tenant = form.dataset.tenant || "";
  const tokenKey = "zt_consumer_token:" + tenant;
  const unclaimedKey = "zt_unclaimed_codes:" + tenant;

  function stored(key) {
    try {
      return window.localStorage.getItem(key);
    } catch (error) {
      return null;
    }
  }

  function remember(code) {
    try {
      const codes = JSON.parse(stored(unclaimedKey) || "[]").filter((c) => c !== code);
      codes.push(code);
      window.localStorage.setItem(unclaimedKey, JSON.stringify(codes.slice(-20)));
    } catch (error) {
      /* private mode: nothing to claim later */
    }
  }

  function show(verdict, title, text, contact) {
    box.hidden = false;
    box.dataset.verdict = verdict;
    box.querySelector('[data-part="title"]').textContent = title;
    box.querySelector('[data-part="text"]').textContent = text;
    const contactLine = box.querySelector('[data-part="contact"]');
    contactLine.hidden = !(contact && (verdict === "suspicious" || verdict === "locked"));
    contactLine.querySelector("span").textContent = contact || "";
    box.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  // A first genuine check can earn a red packet: fetch the page's panels again until a new one
  // appears (at once on the embedded tier; a moment later where the scan stream worker grants it).
  async function refreshPanels() {
    const panels = document.getElementById("scan-panels");
    if (!panels || !panels.dataset.url) return;
    for (const wait of [200, 600, 1200, 2500, 5000]) {
      await new Promise((resolve) => setTimeout(resolve, wait));
      try {
        const response = await fetch(panels.dataset.url, { credentials: "same-origin", cache: "no-store" });
        if (!response.ok) return;
        const fresh = document.createElement("div");
        fresh.innerHTML = await response.text();
        const added = Array.from(fresh.children).some((panel) => panel.id && !document.getElementById(panel.id));
        if (added) {
          panels.replaceChildren(...fresh.children);
          return;
        }
      } catch (error) {
        return;
      }
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    errorLine.hidden = true;
    button.disabled = true;
    const label = button.textContent;
    button.textContent = messages.checking || label;
    const body = { code: form.dataset.code, pin: form.elements.pin.value };
    const coords = await locate();
    if (coords) Object.assign(body, { latitude: coords.latitude, longitude: coords.longitude, accuracy: coords.accuracy });
    try {
      const token = stored(tokenKey);
      const headers = { "content-type": "application/json", accept: "application/json" };
      if (token) headers.authorization = "Bearer " + token;
      const response = await fetch(form.dataset.api, {
        method: "POST",
        headers: headers,
        body: JSON.stringify(body),
        credentials: "same-origin",
      });
      const data = await response.json();
      if (response.ok) {
        show(data.verdict, data.title, data.message, data.contact);
        const count = document.querySelector('[data-part="verifications"]');
        if (count && data.verification_number) count.textContent = String(data.verification_number);
        if (data.verdict !== "wrong_pin") form.elements.pin.value = "";
        if (data.verdict === "genuine") refreshPanels();
        if (!token && (data.verdict === "genuine" || data.verdict === "verified_before")) remember(form.dataset.code);
      } else if (data.error === "pin_locked") {
        show("locked", data.data.title, data.detail, data.data.contact);
      } else {
        errorLine.textContent = data.detail || messages.network;
        errorLine.hidden = false;
      }
    } catch (error) {
      errorLine.textContent = messages.network;
      errorLine.hidden = false;
    } finally {
      button.disabled = false;
      button.textContent = label;
    }
  });
})();

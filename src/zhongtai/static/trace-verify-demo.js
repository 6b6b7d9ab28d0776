// The verify-demo page: checks one inclusion proof in this browser with trace-verify.js (a file,
// not an inline script, so the page runs under the platform's Content-Security-Policy).
(async () => {
  const params = new URLSearchParams(location.search);
  const base = location.pathname.replace(/\/verify-demo$/, "");
  const out = document.getElementById("verdict");
  try {
    const key = await (await fetch(base + "/public-key")).json();
    const query = params.has("entry") ? "entry=" + encodeURIComponent(params.get("entry"))
                                      : "leaf_index=" + (params.get("leaf_index") || "0");
    const proof = await (await fetch(base + "/proof/inclusion?" + query)).json();
    const entry = params.get("entry") || params.get("claim");
    const result = await ztVerifyEvent(entry, proof, key.current.verifier_key);
    out.dataset.state = result.ok ? "verified" : "failed";
    out.textContent = (result.ok ? "VERIFIED: " : "NOT VERIFIED: ") + result.reason;
  } catch (error) {
    out.dataset.state = "failed";
    out.textContent = "NOT VERIFIED: " + error;
  }
})();

/*
 * zhongtai trace log verifier — plain JavaScript, no dependencies.
 *
 * Checks in the browser what `zhongtai verify` checks offline: that a C2SP checkpoint is signed by the
 * brand's Ed25519 key (https://c2sp.org/signed-note), and that an entry (an EPCIS event hash ID) is a
 * leaf of the RFC 9162 Merkle tree whose root the checkpoint holds (RFC 9162 §2.1.3.2).
 * SHA-256 and Ed25519 come from WebCrypto (crypto.subtle; Ed25519 needs a current Chromium, Firefox
 * or Safari, and a secure context: https or localhost).
 *
 *   ztVerifyCheckpoint(text, publicKey[, keyName]) -> Promise<{ok, reason, origin, treeSize, rootHash, timestamp}>
 *   ztVerifyInclusion(entry, proof, rootHash)      -> Promise<{ok, reason}>
 *   ztVerifyEvent(entry, proof, publicKey)         -> Promise<{ok, reason}>   (both, using proof.checkpoint)
 *
 * publicKey: the verifier key "name+keyid+base64(0x01‖key)" or the base64 32-byte key.
 * proof: the JSON of GET /epcis/log/{brand}/proof/inclusion. Hashes are base64.
 */
(function (global) {
  "use strict";

  const encoder = new TextEncoder();

  function fromBase64(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error("not base64");
    const binary = atob(text);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    return bytes;
  }

  function toBase64(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  function equal(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  async function sha256(bytes) {
    return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  }

  const leafHash = (entryBytes) => sha256(concat(Uint8Array.of(0), entryBytes));
  const nodeHash = (left, right) => sha256(concat(Uint8Array.of(1), left, right));

  // RFC 9162 §2.1.3.2, with BigInt indexes (JS bit operators are 32-bit).
  async function rootFromInclusion(hashedLeaf, leafIndex, treeSize, path) {
    let fn = BigInt(leafIndex);
    let sn = BigInt(treeSize) - 1n;
    if (fn < 0n || fn > sn) return null; // step 1
    let r = hashedLeaf; // step 3
    for (const p of path) {
      if (p.length !== 32) return null;
      if (sn === 0n) return null; // 4a
      if ((fn & 1n) === 1n || fn === sn) {
        r = await nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while (!((fn & 1n) === 1n || fn === 0n)) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = await nodeHash(r, p);
      }
      fn >>= 1n; // 4c
      sn >>= 1n;
    }
    return sn === 0n ? r : null; // step 5 (the root comparison is the caller's)
  }

  function parsePublicKey(publicKey) {
    const text = String(publicKey).trim();
    const parts = text.split("+");
    if (parts.length >= 3 && /^[0-9a-fA-F]{8}$/.test(parts[1])) {
      const raw = fromBase64(parts.slice(2).join("+"));
      if (raw.length !== 33 || raw[0] !== 1) throw new Error("not an Ed25519 verifier key");
      return { name: parts[0], keyId: parts[1].toLowerCase(), key: raw.slice(1) };
    }
    const key = fromBase64(text);
    if (key.length !== 32) throw new Error("an Ed25519 public key has 32 bytes");
    return { name: null, keyId: null, key };
  }

  function parseCheckpoint(text) {
    if (typeof text !== "string" || !text.endsWith("\n")) throw new Error("not a signed note");
    if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) throw new Error("control characters in the note");
    const split = text.lastIndexOf("\n\n");
    if (split < 0) throw new Error("no blank line before the signatures");
    const body = text.slice(0, split + 1);
    const lines = body.slice(0, -1).split("\n");
    if (lines.length < 3 || lines.some((l) => l === "")) throw new Error("a checkpoint has origin, size and root");
    if (!/^(0|[1-9][0-9]*)$/.test(lines[1])) throw new Error("the tree size is not a decimal number");
    const rootHash = fromBase64(lines[2]);
    if (rootHash.length !== 32) throw new Error("the root hash is not 32 bytes");
    let timestamp = null;
    for (const line of lines.slice(3)) {
      const match = /^timestamp ([0-9]+)$/.exec(line);
      if (match) timestamp = Number(match[1]);
    }
    const signatures = text
      .slice(split + 2, -1)
      .split("\n")
      .map((line) => {
        const parts = line.split(" ");
        if (parts.length !== 3 || parts[0] !== "\u2014") throw new Error("a signature line is '— name signature'");
        const raw = fromBase64(parts[2]);
        if (raw.length < 5) throw new Error("a signature is too short");
        return { name: parts[1], keyId: raw.slice(0, 4), signature: raw.slice(4) };
      });
    return { body, origin: lines[0], treeSize: lines[1], rootHash, timestamp, signatures };
  }

  async function ztVerifyCheckpoint(text, publicKey, keyName) {
    try {
      const note = parseCheckpoint(text);
      const key = parsePublicKey(publicKey);
      const name = keyName || key.name || note.origin;
      const keyId = (await sha256(concat(encoder.encode(name + "\n"), Uint8Array.of(1), key.key))).slice(0, 4);
      const mine = note.signatures.filter((s) => s.name === name && equal(s.keyId, keyId));
      if (mine.length === 0) return { ok: false, reason: "the checkpoint carries no signature by the key " + name };
      const cryptoKey = await crypto.subtle.importKey("raw", key.key, { name: "Ed25519" }, false, ["verify"]);
      for (const s of mine) {
        const valid = await crypto.subtle.verify({ name: "Ed25519" }, cryptoKey, s.signature, encoder.encode(note.body));
        if (!valid) return { ok: false, reason: "the checkpoint's signature does not verify: the text was changed" };
      }
      return {
        ok: true,
        reason: "signed by " + name,
        origin: note.origin,
        treeSize: Number(note.treeSize),
        rootHash: toBase64(note.rootHash),
        timestamp: note.timestamp,
      };
    } catch (error) {
      return { ok: false, reason: String(error && error.message ? error.message : error) };
    }
  }

  async function ztVerifyInclusion(entry, proof, rootHash) {
    try {
      const path = (proof.inclusion_path || []).map(fromBase64);
      const hashed = await leafHash(encoder.encode(entry));
      const root = await rootFromInclusion(hashed, proof.leaf_index, proof.tree_size, path);
      if (root === null || !equal(root, fromBase64(rootHash))) {
        return { ok: false, reason: "the entry is not leaf " + proof.leaf_index + " of the tree of size " + proof.tree_size };
      }
      return { ok: true, reason: "the entry is leaf " + proof.leaf_index + " of the tree of size " + proof.tree_size };
    } catch (error) {
      return { ok: false, reason: String(error && error.message ? error.message : error) };
    }
  }

  async function ztVerifyEvent(entry, proof, publicKey) {
    if (!proof || typeof proof.checkpoint !== "string") return { ok: false, reason: "the proof carries no checkpoint" };
    const signed = await ztVerifyCheckpoint(proof.checkpoint, publicKey);
    if (!signed.ok) return signed;
    if (signed.treeSize !== Number(proof.tree_size)) {
      return { ok: false, reason: "the proof is for another tree size than the checkpoint" };
    }
    const included = await ztVerifyInclusion(entry, proof, signed.rootHash);
    if (!included.ok) return included;
    return { ok: true, reason: included.reason + " of " + signed.origin + ", " + signed.reason };
  }

  global.ztVerifyCheckpoint = ztVerifyCheckpoint;
  global.ztVerifyInclusion = ztVerifyInclusion;
  global.ztVerifyEvent = ztVerifyEvent;
})(typeof window !== "undefined" ? window : globalThis);

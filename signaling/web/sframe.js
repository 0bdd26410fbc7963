// SFrame (RFC 9605) for the browser: the header codec, key and salt derivation, nonces, and
// frame encryption and decryption with the AES-GCM suites, plus the product's key schedule
// (one passphrase per room, one base_key per sender; the Rust twin is sframe/src/sender_keys.rs).
//
// Pure functions on bytes, no DOM, no state: loaded by the E2EE worker with
// importScripts("sframe.js") and by test pages with <script>; everything is on `self.SFrame`.
// Byte-compatible with the Rust crate `sframe` (signaling/tests/e2ee_browser.rs checks it
// against the RFC 9605 Appendix C vectors and against Rust-made frames).
//
// Conventions:
// - Bytes are Uint8Array; KID and CTR are BigInt (0 .. 2^64-1), because both are 64-bit on the
//   wire and a Number loses precision above 2^53.
// - Nothing here throws on bytes from the network. parseHeader and decrypt return
//   {ok: false, reason} with a short reason string that callers count; only programming errors
//   (a KID out of range given to encrypt, an unknown suite id) throw.
// - Keys live in non-extractable CryptoKeys once imported. Intermediate raw bytes are
//   overwritten with zeros when done with (best effort: JS gives no guarantee the engine did not
//   copy them).
"use strict";

(function (global) {
  const encoder = new TextEncoder();

  // ============================================================================== suites

  // RFC 9605 §4.5 and the IANA registry (§8.1). Only the AES-GCM suites: WebCrypto has no
  // truncated-HMAC AEAD, and the product uses 0x0004.
  const SUITES = Object.freeze({
    0x0004: Object.freeze({ id: 0x0004, name: "AES_128_GCM_SHA256_128", hash: "SHA-256", nk: 16, nt: 16 }),
    0x0005: Object.freeze({ id: 0x0005, name: "AES_256_GCM_SHA512_128", hash: "SHA-512", nk: 32, nt: 16 }),
  });
  const AES_128_GCM_SHA256_128 = SUITES[0x0004];
  const AES_256_GCM_SHA512_128 = SUITES[0x0005];
  // Nn: 12 bytes in every suite.
  const NONCE_LEN = 12;

  function suiteById(id) {
    const suite = SUITES[id];
    if (!suite) throw new RangeError(`SFrame cipher suite ${id} not implemented`);
    return suite;
  }

  // ============================================================================== header

  //  0 1 2 3 4 5 6 7
  // +-+-+-+-+-+-+-+-+------------+------------+
  // |X|  K  |Y|  C  |   KID...   |   CTR...   |
  // +-+-+-+-+-+-+-+-+------------+------------+
  //
  // X = 0: K is the KID (0-7). X = 1: K + 1 is the KID's length in bytes (big-endian, after the
  // config byte). Y and C likewise for the CTR, which follows the KID (§4.3).
  const EXTENDED = 0b1000;
  const MAX_U64 = (1n << 64n) - 1n;
  const MAX_HEADER_LEN = 17;

  // Bytes a value takes after the config byte: none for 0-7, else its minimal big-endian length.
  function extraLength(value) {
    let len = 0;
    if (value < 8n) return 0;
    for (let v = value; v > 0n; v >>= 8n) len += 1;
    return len;
  }

  function checkU64(value, what) {
    if (typeof value !== "bigint" || value < 0n || value > MAX_U64) {
      throw new RangeError(`SFrame ${what} must be a BigInt in 0 .. 2^64-1`);
    }
  }

  function encodeHeader(kid, ctr) {
    checkU64(kid, "KID");
    checkU64(ctr, "CTR");
    const kidLen = extraLength(kid);
    const ctrLen = extraLength(ctr);
    const out = new Uint8Array(1 + kidLen + ctrLen);
    const kidNibble = kidLen === 0 ? Number(kid) : EXTENDED | (kidLen - 1);
    const ctrNibble = ctrLen === 0 ? Number(ctr) : EXTENDED | (ctrLen - 1);
    out[0] = (kidNibble << 4) | ctrNibble;
    writeBigEndian(out, 1, kidLen, kid);
    writeBigEndian(out, 1 + kidLen, ctrLen, ctr);
    return out;
  }

  function writeBigEndian(out, offset, len, value) {
    for (let i = len - 1, v = value; i >= 0; i -= 1, v >>= 8n) out[offset + i] = Number(v & 0xffn);
  }

  // One KID or CTR given its nibble, read from bytes[offset..]. Returns {value, length} or a
  // failure. Rejects non-minimal encodings as the Rust parser does: §4.3 says the minimum
  // number of bytes MUST be used, and one encoding per (KID, CTR) means one AAD per frame.
  function readField(nibble, bytes, offset) {
    if ((nibble & EXTENDED) === 0) return { ok: true, value: BigInt(nibble & 0b111), length: 0 };
    const len = (nibble & 0b111) + 1;
    if (bytes.length < offset + len) return { ok: false, reason: "truncated-header" };
    const first = bytes[offset];
    if ((len === 1 && first < 8) || (len > 1 && first === 0)) {
      return { ok: false, reason: "non-minimal-header" };
    }
    let value = 0n;
    for (let i = 0; i < len; i += 1) value = (value << 8n) | BigInt(bytes[offset + i]);
    return { ok: true, value, length: len };
  }

  // {ok: true, kid, ctr, length} (length: the header's bytes; the ciphertext starts there), or
  // {ok: false, reason} for "empty", "truncated-header", "non-minimal-header".
  function parseHeader(bytes) {
    if (!(bytes instanceof Uint8Array) || bytes.length === 0) return { ok: false, reason: "empty" };
    const config = bytes[0];
    const kid = readField(config >> 4, bytes, 1);
    if (!kid.ok) return kid;
    const ctr = readField(config & 0x0f, bytes, 1 + kid.length);
    if (!ctr.ok) return ctr;
    return { ok: true, kid: kid.value, ctr: ctr.value, length: 1 + kid.length + ctr.length };
  }

  // ============================================================================== keys

  const KEY_LABEL = encoder.encode("SFrame 1.0 Secret key ");
  const SALT_LABEL = encoder.encode("SFrame 1.0 Secret salt ");

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      out.set(p, offset);
      offset += p.length;
    }
    return out;
  }

  function u64BigEndian(value, what) {
    checkU64(value, what);
    const out = new Uint8Array(8);
    writeBigEndian(out, 0, 8, value);
    return out;
  }

  function u16BigEndian(value) {
    return new Uint8Array([(value >> 8) & 0xff, value & 0xff]);
  }

  function importHkdfKey(bytes) {
    return crypto.subtle.importKey("raw", bytes, "HKDF", false, ["deriveBits"]);
  }

  // HKDF (Extract then Expand) of `bytes` bytes. `ikm`: raw bytes, or a CryptoKey imported for
  // HKDF, so a long-lived secret need not stay in JS memory as bytes.
  async function hkdf(hash, ikm, salt, info, bytes) {
    const key = ikm instanceof CryptoKey ? ikm : await importHkdfKey(ikm);
    const bits = await crypto.subtle.deriveBits({ name: "HKDF", hash, salt, info }, key, bytes * 8);
    return new Uint8Array(bits);
  }

  // §4.4.2: sframe_secret = HKDF-Extract("", base_key); sframe_key and sframe_salt are
  // HKDF-Expand(sframe_secret, label || KID (8 bytes BE) || suite id (2 bytes BE), Nk or Nn).
  // WebCrypto's HKDF does Extract then Expand; an empty salt is HashLen zero bytes for HMAC
  // (RFC 5869 §2.2), which is what "" means. Returns raw bytes {key, salt}: callers that only
  // encrypt or decrypt want importKeySalt instead.
  async function deriveKeySalt(suite, kid, baseKey) {
    const tail = concat(u64BigEndian(kid, "KID"), u16BigEndian(suite.id));
    const empty = new Uint8Array(0);
    const key = await hkdf(suite.hash, baseKey, empty, concat(KEY_LABEL, tail), suite.nk);
    const salt = await hkdf(suite.hash, baseKey, empty, concat(SALT_LABEL, tail), NONCE_LEN);
    return { key, salt };
  }

  // The per-KID material for encrypt/decrypt: a non-extractable AES-GCM key and the salt.
  async function importKeySalt(suite, kid, baseKey) {
    const raw = await deriveKeySalt(suite, kid, baseKey);
    try {
      const key = await crypto.subtle.importKey("raw", raw.key, "AES-GCM", false, ["encrypt", "decrypt"]);
      return { suite, kid, key, salt: raw.salt };
    } finally {
      raw.key.fill(0);
    }
  }

  // §4.4.3: the salt XOR the CTR, the CTR right-aligned as a big-endian Nn-byte integer.
  function nonce(salt, ctr) {
    const out = Uint8Array.from(salt);
    const ctrBytes = u64BigEndian(ctr, "CTR");
    for (let i = 0; i < 8; i += 1) out[NONCE_LEN - 8 + i] ^= ctrBytes[i];
    return out;
  }

  // ============================================================================== frames

  // AES-GCM with the frame's nonce, AAD = header || metadata and a 16-byte tag (Nt, §4.5).
  function gcmParams(material, ctr, header, metadata) {
    return {
      name: "AES-GCM",
      iv: nonce(material.salt, ctr),
      additionalData: concat(header, metadata),
      tagLength: material.suite.nt * 8,
    };
  }

  // header || AEAD.Encrypt(sframe_key, nonce, AAD = header || metadata, plaintext), §4.4.3.
  // The caller owns CTR: never use a (key, KID, CTR) twice (§7.1), or AES-GCM leaks the XOR of
  // two frames and lets anyone forge frames.
  async function encrypt(material, ctr, metadata, plaintext) {
    const header = encodeHeader(material.kid, ctr);
    const params = gcmParams(material, ctr, header, metadata);
    const sealed = await crypto.subtle.encrypt(params, material.key, plaintext);
    return concat(header, new Uint8Array(sealed));
  }

  // Opens a frame whose header is already parsed (so a caller can pick the key by KID first).
  // {ok: true, plaintext} or {ok: false, reason} with reason "too-short", "authentication".
  async function open(material, parsed, metadata, frame) {
    if (frame.length - parsed.length < material.suite.nt) return { ok: false, reason: "too-short" };
    const header = frame.subarray(0, parsed.length);
    try {
      const params = gcmParams(material, parsed.ctr, header, metadata);
      const plain = await crypto.subtle.decrypt(params, material.key, frame.subarray(parsed.length));
      return { ok: true, plaintext: new Uint8Array(plain) };
    } catch {
      // WebCrypto reports every failed tag check as an OperationError: a forged, corrupted or
      // wrongly keyed frame, or other metadata.
      return { ok: false, reason: "authentication" };
    }
  }

  // Parses and opens a whole frame with one key: {ok: true, kid, ctr, plaintext} or
  // {ok: false, reason} (a header reason, "wrong-kid", "too-short", "authentication").
  async function decrypt(material, metadata, frame) {
    const parsed = parseHeader(frame);
    if (!parsed.ok) return parsed;
    if (parsed.kid !== material.kid) return { ok: false, reason: "wrong-kid" };
    const opened = await open(material, parsed, metadata, frame);
    if (!opened.ok) return opened;
    return { ok: true, kid: parsed.kid, ctr: parsed.ctr, plaintext: opened.plaintext };
  }

  // ============================================================================== product keys

  // How the product turns a room passphrase into one base_key per sender; the construction and
  // its reasons are in sframe/src/sender_keys.rs, which this must match byte for byte:
  //
  //   room_salt       = "meeting-appliance e2ee room " || room (UTF-8)
  //   passphrase_key  = PBKDF2-HMAC-SHA-256(passphrase, room_salt, 600000, 32 bytes)
  //   sender_base_key = HKDF-SHA-256(salt = room_salt, IKM = passphrase_key,
  //                                  info = "meeting-appliance e2ee sender " || sender_id (u64 BE), 32)
  const PBKDF2_ITERATIONS = 600000;
  const PRODUCT_KEY_LEN = 32;
  const ROOM_LABEL = encoder.encode("meeting-appliance e2ee room ");
  const SENDER_LABEL = encoder.encode("meeting-appliance e2ee sender ");

  function roomSalt(room) {
    return concat(ROOM_LABEL, encoder.encode(room));
  }

  // Slow on purpose (600,000 iterations): run it in a worker, once per passphrase.
  async function passphraseKey(passphrase, room) {
    const password = await crypto.subtle.importKey("raw", encoder.encode(passphrase), "PBKDF2", false, [
      "deriveBits",
    ]);
    const params = { name: "PBKDF2", hash: "SHA-256", salt: roomSalt(room), iterations: PBKDF2_ITERATIONS };
    return new Uint8Array(await crypto.subtle.deriveBits(params, password, PRODUCT_KEY_LEN * 8));
  }

  // `passphraseKeyMaterial`: passphraseKey's bytes, or importPassphraseKey's CryptoKey.
  async function senderBaseKey(passphraseKeyMaterial, room, senderId) {
    const info = concat(SENDER_LABEL, u64BigEndian(senderId, "sender id"));
    return hkdf("SHA-256", passphraseKeyMaterial, roomSalt(room), info, PRODUCT_KEY_LEN);
  }

  // passphrase_key as a non-extractable HKDF key for senderBaseKey; wipes the bytes.
  async function importPassphraseKey(bytes) {
    try {
      return await importHkdfKey(bytes);
    } finally {
      bytes.fill(0);
    }
  }

  // ============================================================================== helpers

  // FNV-1a 64 of bytes as 16 hex digits: a cheap fingerprint so tests can compare what a sender
  // encoded with what a receiver decrypted without shipping frames around. Not a MAC.
  // 64-bit arithmetic in two 32-bit halves: prime = 2^40 + 0x1b3, so h * prime =
  // h * 0x1b3 + (lo << 40), and lo << 40 only touches the high half (as lo << 8).
  function fnv1a64(bytes) {
    let hi = 0xcbf29ce4;
    let lo = 0x84222325;
    for (let i = 0; i < bytes.length; i += 1) {
      lo ^= bytes[i];
      const low = (lo >>> 0) * 0x1b3; // < 2^41: exact in a double
      const carry = Math.floor(low / 0x100000000);
      hi = (Math.imul(hi, 0x1b3) + carry + (lo << 8)) >>> 0;
      lo = low >>> 0;
    }
    return hi.toString(16).padStart(8, "0") + (lo >>> 0).toString(16).padStart(8, "0");
  }

  function toHex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // Hex to bytes; null for anything that is not an even number of hex digits.
  function fromHex(hex) {
    if (typeof hex !== "string" || hex.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(hex)) return null;
    const out = new Uint8Array(hex.length / 2);
    for (let i = 0; i < out.length; i += 1) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }

  global.SFrame = Object.freeze({
    SUITES,
    AES_128_GCM_SHA256_128,
    AES_256_GCM_SHA512_128,
    NONCE_LEN,
    MAX_HEADER_LEN,
    PBKDF2_ITERATIONS,
    suiteById,
    encodeHeader,
    parseHeader,
    deriveKeySalt,
    importKeySalt,
    nonce,
    encrypt,
    open,
    decrypt,
    roomSalt,
    passphraseKey,
    importPassphraseKey,
    senderBaseKey,
    fnv1a64,
    toHex,
    fromHex,
    concat,
  });
})(self);

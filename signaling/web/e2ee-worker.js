// End-to-end encryption of media frames (DESIGN.md invariant 9): a classic worker behind
// RTCRtpScriptTransform that SFrame-encrypts (RFC 9605, sframe.js) what this participant
// sends and decrypts what it receives, so the bridge forwards frames it cannot read.
//
// ============================================================================== contract
//
// One worker per page. The page attaches it to senders and receivers with
//
//   sender.transform   = new RTCRtpScriptTransform(worker, {role: "encrypt", kind, id});
//   receiver.transform = new RTCRtpScriptTransform(worker, {role: "decrypt", kind, id});
//
// kind: "audio" | "video" (the track's kind); id: an opaque string the page chooses, unique
// among its transforms, that names the transform in the messages below.
//
// page -> worker (postMessage):
//   {type: "passphrase", room, passphrase, senderId}
//       Turns E2EE on (or changes the passphrase). room: the room name; passphrase: a
//       non-empty string; senderId: 16 hex digits, this participant's 64-bit sender id with the
//       lowest bit 0. Video is encrypted under KID = senderId, audio under KID = senderId ^ 1.
//       Each KID is a sender id in the sense of sframe/src/sender_keys.rs: its base_key is
//       sender_base_key(passphrase_key, room, KID), so audio and video have keys and nonce
//       spaces of their own. The page picks the id at random for each passphrase it sends
//       (sender_keys.rs: an id must never be reused with the same room and passphrase, or CTRs
//       restart under the same key); the worker refuses an id it has used before.
//       The worker runs the slow PBKDF2 itself, off the main thread. Until it is done, encrypt
//       transforms DROP frames: once E2EE was asked for, nothing leaves in clear (and nothing
//       leaves under an old passphrase, which may be why it was changed); their state changes
//       with the first encrypted frame. An invalid message still turns E2EE on, with no usable
//       key (everything is dropped), and is answered with an "error" message.
//   {type: "passphrase", passphrase: null}
//       Turns E2EE off: keys are forgotten at once, frames pass through unchanged both ways.
//   {type: "expect", id, encrypted}
//       Tells decrypt transform `id` whether signaling says its sender encrypts (may come before
//       the transform exists). Frames that do not authenticate from a sender expected to encrypt
//       are dropped even while this participant has E2EE off.
//   {type: "stats"}
//       Asks for the counters below.
//
// worker -> page:
//   {type: "status", id, state}   whenever transform `id` changes state:
//       "clear"          passing frames through unchanged
//       "encrypting"     (encrypt) sending SFrame-encrypted frames
//       "decrypting"     (decrypt) frames authenticate and are decrypted
//       "cannot-decrypt" (decrypt) frames arrive but none authenticated for CANNOT_DECRYPT_MS or
//                        CANNOT_DECRYPT_FRAMES frames in a row (wrong or missing passphrase)
//   {type: "stats", transforms: {id: {role, kind, state, frames, encrypted, decrypted, failed,
//       dropped, passed, reasons: {reason: count}, kids: ["<16 hex>"...],
//       recent: [{timestamp, hash, head?}...]}}}
//       frames: all frames seen; encrypted / decrypted / passed: frames forwarded that way;
//       failed: decryption attempts that failed (by reason in `reasons`); dropped: frames not
//       forwarded. kids: KIDs seen (at most MAX_KIDS). recent: for the last RECENT_FRAMES
//       forwarded frames, the RTP timestamp and the FNV-1a 64 hash of the plaintext frame
//       (sender: before encryption; receiver: after decryption), so a test can prove receivers
//       decoded exactly what senders encoded; a sender's entries also carry `head`, the first
//       RECENT_HEAD_BYTES plaintext bytes in hex, so a test can look for them on the wire.
//   {type: "error", reason}   a message the worker could not use.
//
// ============================================================================== framing
//
// What stays in clear, and why. The bridge must forward and switch streams without the keys,
// and the browser's RTP packetizer and depacketizer run on the transformed frame:
// - VP8: an encoded frame starts with the VP8 frame tag (RFC 6386 §9.1; RFC 7741 §4.3 for
//   its use in RTP). Its P bit (bit 0 of byte 0) is 0 on keyframes. We keep the first 10 bytes
//   of a keyframe (3-byte tag, start code, width and height) and the first 3 of a delta frame in
//   clear, in front of the SFrame header, and pass them to SFrame as metadata so they are
//   authenticated (AAD) and cannot be altered. Chromium's VP8 depacketizer reads the keyframe
//   flag and dimensions from exactly these bytes, and the bridge needs the keyframe flag to
//   switch layers. The RTP VP8 payload descriptor (picture id, TL0PICIDX) is added by the
//   packetizer after this transform, so it is not part of the frame, is outside SFrame and is
//   protected hop by hop by SRTP like the RTP header.
// - Audio (Opus): encrypted whole. An Opus RTP payload needs no framing beyond itself, and the
//   bridge's speaker detection uses the audio-level header extension (RFC 6464), not the payload.
// - Other video codecs: encrypted whole. The product negotiates VP8 only (app.js); H.264 or VP9
//   would need codec-aware clear bytes, which this does not attempt.
//
// CTR: one counter per KID and key, from 0, shared by every encrypt transform of this worker
// (a P2P page has one encoder per peer under the same KID), so no (key, KID, CTR) repeats. A new
// passphrase gives new keys, and the counters restart with them.
//
// Receive: keys are derived per KID on first sight and cached (MAX_KIDS per passphrase, evicting
// keys that never authenticated a frame first); a flood of fresh KIDs on one transform can
// trigger at most DERIVATION_BURST derivations, then DERIVATIONS_PER_SECOND. After a passphrase
// change the previous keys stay usable for GRACE_MS, so frames encrypted before a sender
// switched still decrypt. Replays (a CTR seen before for that key and KID, or older than the
// window) are rejected and counted: RFC 9605 §7.3 leaves this to the application.
//
// Hostile input: nothing throws out of the frame loop. Every bad frame is dropped and counted
// by reason; an exception would error the stream and stop the media for good.
"use strict";

importScripts("sframe.js");

(function (worker) {
  const S = worker.SFrame;
  const SUITE = S.AES_128_GCM_SHA256_128;

  // How long the previous passphrase's keys still decrypt: senders switch at slightly different
  // moments (each runs PBKDF2 first), and frames already in flight need to land.
  const GRACE_MS = 10000;
  // Receive keys kept per passphrase: two KIDs (audio, video) for each of 32 senders.
  const MAX_KIDS = 64;
  // Per-KID derivations (two HKDFs and a key import each) one decrypt transform may trigger at
  // once, and the sustained rate after. A transform carries one sender's source, so it needs a
  // new key only when that sender (or the passphrase) changes; a budget per transform keeps a
  // flood on one stream (forged KIDs, or clear frames parsed as SFrame) from starving the others.
  const DERIVATION_BURST = 8;
  const DERIVATIONS_PER_SECOND = 2;
  // CTRs remembered per KID for replay detection: about 30 s of audio at 50 frames/s. Frames
  // reach the transform in order except around retransmissions, far less than this apart.
  const REPLAY_WINDOW = 1024;
  // When a decrypt transform gives up and reports "cannot-decrypt": about a second of video.
  const CANNOT_DECRYPT_MS = 1000;
  const CANNOT_DECRYPT_FRAMES = 30;
  // Frame fingerprints kept per transform for the stats.
  const RECENT_FRAMES = 200;
  // Plaintext bytes a sender keeps per recent frame for the stats (`head`).
  const RECENT_HEAD_BYTES = 48;
  // VP8 bytes left in clear (see "framing" above).
  const VP8_KEYFRAME_CLEAR_BYTES = 10;
  const VP8_DELTA_CLEAR_BYTES = 3;
  const MAX_U64 = (1n << 64n) - 1n;

  // ============================================================================ replay

  // A sliding window of CTRs seen for one key and KID: the highest CTR, and a bit per CTR in the
  // REPLAY_WINDOW below it (a ring indexed by CTR mod size).
  class ReplayWindow {
    constructor(size) {
      this.size = BigInt(size);
      this.seen = new Uint8Array(size);
      this.highest = -1n;
    }

    // "fresh", "replayed" or "too-old".
    check(ctr) {
      if (ctr > this.highest) return "fresh";
      if (this.highest - ctr >= this.size) return "too-old";
      return this.seen[this.slot(ctr)] ? "replayed" : "fresh";
    }

    // Only for frames that authenticated: forged frames must not move the window.
    mark(ctr) {
      if (ctr > this.highest) {
        const gap = ctr - this.highest;
        if (gap >= this.size) this.seen.fill(0);
        else for (let c = this.highest + 1n; c < ctr; c += 1n) this.seen[this.slot(c)] = 0;
        this.highest = ctr;
      }
      this.seen[this.slot(ctr)] = 1;
    }

    slot(ctr) {
      return Number(ctr % this.size);
    }
  }

  // ============================================================================ keys

  // A token bucket: `burst` takes at once, then `perSecond`.
  class TokenBucket {
    constructor(burst, perSecond) {
      this.burst = burst;
      this.perSecond = perSecond;
      this.tokens = burst;
      this.at = performance.now();
    }

    take() {
      const now = performance.now();
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.at) / 1000) * this.perSecond);
      this.at = now;
      if (this.tokens < 1) return false;
      this.tokens -= 1;
      return true;
    }
  }

  // Everything derived from one passphrase: the passphrase key (an HKDF CryptoKey once PBKDF2 is
  // done), this participant's encryption keys and CTRs, and the receive keys per KID.
  class Keyring {
    constructor(room, senderId) {
      this.room = room;
      this.senderId = senderId; // BigInt, or null: then this keyring cannot encrypt
      this.passphraseKey = null;
      this.ready = false;
      this.broken = false; // bad message or failed derivation: no key, ever
      this.sending = new Map(); // KID -> {material: Promise, next: BigInt}
      this.receiving = new Map(); // KID -> {material: Promise, replay, proven}, insertion = LRU
    }

    async baseMaterial(kid) {
      const base = await S.senderBaseKey(this.passphraseKey, this.room, kid);
      try {
        return await S.importKeySalt(SUITE, kid, base);
      } finally {
        base.fill(0);
      }
    }

    // The next CTR for `kid` and its key, or null when the counter is spent (2^64 frames).
    nextSend(kid) {
      let entry = this.sending.get(kid);
      if (!entry) {
        entry = { material: this.baseMaterial(kid), next: 0n };
        this.sending.set(kid, entry);
      }
      if (entry.next > MAX_U64) return null;
      const ctr = entry.next;
      entry.next += 1n;
      return { material: entry.material, ctr };
    }

    // The receive entry for `kid`, derived on first sight if `budget` (a TokenBucket) allows;
    // null when it does not.
    receiveEntry(kid, budget) {
      const entry = this.receiving.get(kid);
      if (entry) {
        this.receiving.delete(kid);
        this.receiving.set(kid, entry);
        return entry;
      }
      if (!budget.take()) return null;
      if (this.receiving.size >= MAX_KIDS) this.evictOne();
      const fresh = {
        material: this.baseMaterial(kid),
        replay: new ReplayWindow(REPLAY_WINDOW),
        proven: false,
      };
      // A failed derivation must not leave an unhandled rejection; the frame path awaits it too.
      fresh.material.catch(() => {});
      this.receiving.set(kid, fresh);
      return fresh;
    }

    // The least recently used key that never authenticated a frame (a flood's), else the least
    // recently used.
    evictOne() {
      let victim = null;
      for (const [kid, entry] of this.receiving) {
        if (!entry.proven) {
          victim = kid;
          break;
        }
        if (victim === null) victim = kid;
      }
      this.receiving.delete(victim);
    }
  }

  // current: the newest passphrase's keyring (maybe still deriving); previous: the one it
  // replaced, usable until previousUntil.
  const keys = { current: null, previous: null, previousUntil: 0 };

  function e2eeOn() {
    return keys.current !== null;
  }

  // Keyrings to try on receive, newest first.
  function receiveKeyrings(now) {
    const rings = [];
    if (keys.current && keys.current.ready) rings.push(keys.current);
    if (keys.previous && now < keys.previousUntil) rings.push(keys.previous);
    else keys.previous = null;
    return rings;
  }

  // Why no keyring can decrypt: the passphrase is still being derived, or there is none.
  function missingKeyReason() {
    const ring = keys.current;
    return ring && !ring.ready && !ring.broken ? "deriving" : "no-key";
  }

  function setPassphrase(message) {
    if (message.passphrase === null) {
      keys.current = null;
      keys.previous = null;
      return;
    }
    const now = performance.now();
    if (keys.current && keys.current.ready) {
      keys.previous = keys.current;
      keys.previousUntil = now + GRACE_MS;
    }
    const valid =
      typeof message.room === "string" && typeof message.passphrase === "string" && message.passphrase !== "";
    const senderId = freshSenderId(message.senderId);
    const ring = new Keyring(valid ? message.room : "", senderId);
    keys.current = ring;
    if (!valid) {
      ring.broken = true;
      reportError("passphrase message needs a string room and a non-empty string passphrase");
      return;
    }
    if (senderId === null) {
      reportError("senderId must be 16 new hex digits with the lowest bit 0; dropping outgoing frames");
    }
    derivePassphrase(ring, message.passphrase);
  }

  // Sender ids this worker has encrypted under. Ids are random 64-bit numbers, so a repeat means
  // the page re-sent an old id, and with the same passphrase that would restart CTR at 0 under the
  // same key (AES-GCM nonce reuse); refusing every repeat is simpler than comparing passphrases.
  const usedSenderIds = new Set();

  // The message's sender id as a BigInt, or null when malformed, odd, or used before.
  function freshSenderId(value) {
    if (typeof value !== "string" || !/^[0-9a-fA-F]{16}$/.test(value)) return null;
    const id = BigInt("0x" + value);
    if ((id & 1n) !== 0n || usedSenderIds.has(id)) return null;
    usedSenderIds.add(id);
    return id;
  }

  async function derivePassphrase(ring, passphrase) {
    try {
      const bytes = await S.passphraseKey(passphrase, ring.room);
      ring.passphraseKey = await S.importPassphraseKey(bytes);
      ring.ready = true;
    } catch (e) {
      ring.broken = true;
      reportError(`passphrase derivation failed: ${e && e.name}`);
    }
  }

  // ============================================================================ transforms

  const transforms = new Map(); // id -> Transform
  const expectations = new Map(); // id -> bool, from "expect" messages (may precede the transform)

  class Transform {
    constructor(options) {
      const valid =
        options &&
        (options.role === "encrypt" || options.role === "decrypt") &&
        (options.kind === "audio" || options.kind === "video") &&
        typeof options.id === "string";
      this.valid = Boolean(valid);
      this.id = valid ? options.id : String((options && options.id) || "invalid");
      this.role = valid ? options.role : "invalid";
      this.kind = valid ? options.kind : "invalid";
      this.state = null;
      this.counts = { frames: 0, encrypted: 0, decrypted: 0, failed: 0, dropped: 0, passed: 0 };
      this.reasons = {};
      this.kids = new Set();
      this.recent = [];
      this.transformer = null; // set by attach(); asked for keyframes (resync)
      this.ring = null; // the keyring of the last frame encrypted, to notice a new passphrase
      this.failRun = null; // {since, count}: failures since the last success
      this.derivations = new TokenBucket(DERIVATION_BURST, DERIVATIONS_PER_SECOND);
    }

    setState(state) {
      if (this.state === state) return;
      // Video resumes with a keyframe whenever frames start to go through another way: the
      // frames dropped meanwhile (while keys were derived, or failing) were references of the
      // ones that follow, and a decoder that lost them shows nothing until the next keyframe.
      if (this.kind === "video" && (state === "encrypting" || state === "decrypting")) this.resync();
      this.state = state;
      worker.postMessage({ type: "status", id: this.id, state });
    }

    // The sender's encoder makes a keyframe now; a receiver asks its sender for one (RTCP PLI).
    resync() {
      const tr = this.transformer;
      const ask = !tr ? null : this.role === "encrypt" ? tr.generateKeyFrame : tr.sendKeyFrameRequest;
      if (typeof ask !== "function") return;
      try {
        Promise.resolve(ask.call(tr)).catch(() => {});
      } catch {
        // An encoder not yet running: the next change of state asks again.
      }
    }

    drop(reason) {
      this.counts.dropped += 1;
      this.reasons[reason] = (this.reasons[reason] || 0) + 1;
    }

    fail(reason) {
      this.counts.failed += 1;
      this.drop(reason);
      const now = performance.now();
      if (!this.failRun) this.failRun = { since: now, count: 0 };
      this.failRun.count += 1;
      if (this.failRun.count >= CANNOT_DECRYPT_FRAMES || now - this.failRun.since >= CANNOT_DECRYPT_MS) {
        this.setState("cannot-decrypt");
      }
    }

    noteKid(kid) {
      if (this.kids.size < MAX_KIDS) this.kids.add(kid);
    }

    // Remembers the plaintext's fingerprint for the stats; a sender also keeps the plaintext's
    // first bytes, so a test can look for them in what the bridge forwarded (they never leave
    // this worker but through the page's own stats request).
    record(frame, plaintext) {
      const entry = { timestamp: rtpTimestamp(frame), hash: S.fnv1a64(plaintext) };
      if (this.role === "encrypt") entry.head = hexPrefix(plaintext, RECENT_HEAD_BYTES);
      this.recent.push(entry);
      if (this.recent.length > RECENT_FRAMES) this.recent.shift();
    }

    stats() {
      return {
        role: this.role,
        kind: this.kind,
        state: this.state,
        ...this.counts,
        reasons: { ...this.reasons },
        kids: [...this.kids].map((k) => k.toString(16).padStart(16, "0")),
        recent: this.recent.slice(),
      };
    }
  }

  function hexPrefix(bytes, n) {
    let out = "";
    for (const b of bytes.subarray(0, n)) out += b.toString(16).padStart(2, "0");
    return out;
  }

  function rtpTimestamp(frame) {
    try {
      const metadata = frame.getMetadata();
      if (typeof metadata.rtpTimestamp === "number") return metadata.rtpTimestamp;
    } catch {
      // fall through to the older attribute
    }
    return typeof frame.timestamp === "number" ? frame.timestamp : null;
  }

  function mimeType(frame) {
    try {
      const type = frame.getMetadata().mimeType;
      return typeof type === "string" ? type.toLowerCase() : null;
    } catch {
      return null;
    }
  }

  // Bytes at the start of a frame left in clear (and authenticated); see "framing" above.
  // Computed from the clear bytes themselves, so sender and receiver agree.
  function clearPrefixLength(kind, frame, data) {
    if (kind !== "video" || data.length === 0) return 0;
    const type = mimeType(frame);
    if (type !== null && type !== "video/vp8") return 0;
    const keyframe = (data[0] & 0x01) === 0;
    return Math.min(data.length, keyframe ? VP8_KEYFRAME_CLEAR_BYTES : VP8_DELTA_CLEAR_BYTES);
  }

  // Forwards `frame` with its plaintext recorded.
  function forward(t, controller, frame, plaintext, counter) {
    t.counts[counter] += 1;
    t.record(frame, plaintext);
    controller.enqueue(frame);
  }

  async function encryptFrame(t, frame, controller) {
    const data = new Uint8Array(frame.data);
    const ring = keys.current;
    if (ring === null) {
      t.setState("clear");
      forward(t, controller, frame, data, "passed");
      return;
    }
    if (ring.broken || ring.senderId === null) return t.drop("no-key");
    if (!ring.ready) return t.drop("deriving");
    const kid = t.kind === "audio" ? ring.senderId ^ 1n : ring.senderId;
    const next = ring.nextSend(kid);
    if (next === null) return t.drop("ctr-exhausted");
    const clear = clearPrefixLength(t.kind, frame, data);
    const metadata = data.subarray(0, clear);
    const sealed = await S.encrypt(await next.material, next.ctr, metadata, data.subarray(clear));
    // Setting frame.data leaves the old buffer, and so `data`, as it was.
    frame.data = S.concat(metadata, sealed).buffer;
    t.noteKid(kid);
    if (t.ring !== ring && t.state === "encrypting") t.resync(); // a new passphrase: a new key
    t.ring = ring;
    t.setState("encrypting");
    forward(t, controller, frame, data, "encrypted");
  }

  async function decryptFrame(t, frame, controller) {
    const data = new Uint8Array(frame.data);
    const rings = receiveKeyrings(performance.now());
    const mustDecrypt = e2eeOn() || expectations.get(t.id) === true;
    if (!mustDecrypt) {
      t.failRun = null;
      t.setState("clear");
      forward(t, controller, frame, data, "passed");
      return;
    }
    if (rings.length === 0) return t.fail(missingKeyReason());
    const result = await openFrame(t, rings, frame, data);
    if (!result.ok) return t.fail(result.reason);
    frame.data = result.plaintext.buffer;
    t.failRun = null;
    t.setState("decrypting");
    forward(t, controller, frame, result.plaintext, "decrypted");
  }

  // Tries each keyring on one received frame: {ok: true, plaintext} (the whole frame, clear
  // prefix included) or {ok: false, reason} with the last ring's reason.
  async function openFrame(t, rings, frame, data) {
    const clear = clearPrefixLength(t.kind, frame, data);
    const metadata = data.subarray(0, clear);
    const body = data.subarray(clear);
    const parsed = S.parseHeader(body);
    if (!parsed.ok) return parsed;
    t.noteKid(parsed.kid);
    let failure = { ok: false, reason: "authentication" };
    for (const ring of rings) {
      const entry = ring.receiveEntry(parsed.kid, t.derivations);
      if (entry === null) {
        failure = { ok: false, reason: "derivation-limit" };
        continue;
      }
      const verdict = entry.replay.check(parsed.ctr);
      if (verdict !== "fresh") {
        failure = { ok: false, reason: verdict };
        continue;
      }
      const opened = await S.open(await entry.material, parsed, metadata, body);
      if (!opened.ok) {
        failure = opened;
        continue;
      }
      // Another transform may have taken this CTR while we awaited.
      if (entry.replay.check(parsed.ctr) !== "fresh") return { ok: false, reason: "replayed" };
      entry.replay.mark(parsed.ctr);
      entry.proven = true;
      return { ok: true, plaintext: S.concat(metadata, opened.plaintext) };
    }
    return failure;
  }

  async function handleFrame(t, frame, controller) {
    t.counts.frames += 1;
    try {
      if (!t.valid) return t.drop("invalid-options");
      if (t.role === "encrypt") await encryptFrame(t, frame, controller);
      else await decryptFrame(t, frame, controller);
    } catch (e) {
      // A bug or a WebCrypto failure (a derivation that rejected): drop, count, keep going.
      t.drop(`exception-${(e && e.name) || "unknown"}`);
    }
  }

  // Runs one RTCRtpScriptTransform. `readable` and `writable` default to the transformer's;
  // tests pass their own streams (to tamper with frames before decryption, or to feed
  // frame-shaped objects), and use the returned {done, stats} to see the result.
  function attach(transformer, readable = transformer.readable, writable = transformer.writable) {
    const t = new Transform(transformer.options);
    t.transformer = transformer;
    if (!t.valid) {
      reportError("transform options need role encrypt|decrypt, kind audio|video and a string id");
    }
    transforms.set(t.id, t);
    const done = readable
      .pipeThrough(new TransformStream({ transform: (frame, ctl) => handleFrame(t, frame, ctl) }))
      .pipeTo(writable)
      .catch(() => {})
      .finally(() => {
        if (transforms.get(t.id) === t) transforms.delete(t.id);
      });
    return { done, stats: () => t.stats() };
  }

  // ============================================================================ messages

  function reportError(reason) {
    worker.postMessage({ type: "error", reason });
  }

  function handleMessage(message) {
    if (message === null || typeof message !== "object") return reportError("message is not an object");
    switch (message.type) {
      case "passphrase":
        return setPassphrase(message);
      case "expect":
        if (typeof message.id !== "string") return reportError("expect needs a string id");
        expectations.set(message.id, message.encrypted === true);
        return undefined;
      case "stats": {
        const out = {};
        for (const [id, t] of transforms) out[id] = t.stats();
        worker.postMessage({ type: "stats", transforms: out });
        return undefined;
      }
      default:
        return reportError(`unknown message type ${String(message.type).slice(0, 32)}`);
    }
  }

  worker.onmessage = (event) => {
    try {
      handleMessage(event.data);
    } catch (e) {
      reportError(`message failed: ${(e && e.name) || "unknown"}`);
    }
  };

  worker.onrtctransform = (event) => attach(event.transformer);

  worker.E2EEWorker = Object.freeze({ attach });
})(self);

// What driver.py runs in the page, one window function per check. Each returns plain JSON: the
// values the browser computed, for e2ee_browser.rs to compare with Rust's. Checks are made in
// Rust; this file only computes and reports.
"use strict";

(() => {
  const S = self.SFrame;
  const hex = S.toHex;
  const unhex = (h) => {
    const bytes = S.fromHex(h);
    if (bytes === null) throw new Error(`bad hex from the driver: ${String(h).slice(0, 40)}`);
    return bytes;
  };
  const bigHex = (h) => BigInt("0x" + h);
  const log = [];
  // The page runs under the daemon's Content-Security-Policy; anything it blocks is a finding.
  const cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) =>
    cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`),
  );

  function note(s) {
    log.push(`${(performance.now() / 1000).toFixed(3)} ${s}`);
    document.getElementById("status").textContent = s;
  }

  // ============================================================================ vectors

  // RFC 9605 Appendix C: C.1 headers, and C.3 frames of the AES-GCM suites. KID and CTR arrive
  // as decimal strings (they exceed 2^53).
  window.runVectors = async (vectors) => {
    const headers = vectors.headers.map((v) => {
      const encoded = hex(S.encodeHeader(BigInt(v.kid), BigInt(v.ctr)));
      const p = S.parseHeader(unhex(v.encoded));
      const parsed = p.ok ? { kid: p.kid.toString(), ctr: p.ctr.toString(), length: p.length } : p;
      return { encoded, parsed };
    });
    const frames = [];
    for (const v of vectors.frames) {
      const suite = S.suiteById(v.cipher_suite);
      const kid = BigInt(v.kid);
      const ctr = BigInt(v.ctr);
      const baseKey = unhex(v.base_key);
      const raw = await S.deriveKeySalt(suite, kid, baseKey);
      const material = await S.importKeySalt(suite, kid, baseKey);
      const ct = await S.encrypt(material, ctr, unhex(v.metadata), unhex(v.pt));
      const opened = await S.decrypt(material, unhex(v.metadata), unhex(v.ct));
      frames.push({
        cipher_suite: v.cipher_suite,
        sframe_key: hex(raw.key),
        sframe_salt: hex(raw.salt),
        nonce: hex(S.nonce(raw.salt, ctr)),
        ct: hex(ct),
        pt: opened.ok ? hex(opened.plaintext) : `error: ${opened.reason}`,
      });
    }
    return { headers, frames };
  };

  // ============================================================================ interop

  // The product's key schedule and frames against Rust's: JS derives passphrase_key and the
  // sender keys, decrypts Rust's frames, encrypts the same (KID, CTR, metadata, plaintext)
  // (AES-GCM is deterministic, so the bytes must be Rust's), and encrypts frames for Rust to
  // decrypt.
  window.runInterop = async (data) => {
    const started = performance.now();
    const passphraseKey = await S.passphraseKey(data.passphrase, data.room);
    const pbkdf2Ms = performance.now() - started;
    const baseKeys = {};
    const materials = new Map();
    for (const id of data.sender_ids) {
      const base = await S.senderBaseKey(passphraseKey, data.room, bigHex(id));
      baseKeys[id] = hex(base);
      materials.set(id, await S.importKeySalt(S.AES_128_GCM_SHA256_128, bigHex(id), base));
    }
    const rustFrames = [];
    for (const f of data.rust_frames) {
      const material = materials.get(f.kid);
      const opened = await S.decrypt(material, unhex(f.metadata), unhex(f.wire));
      const again = await S.encrypt(material, BigInt(f.ctr), unhex(f.metadata), unhex(f.plaintext));
      rustFrames.push({
        decrypted: opened.ok ? hex(opened.plaintext) : `error: ${opened.reason}`,
        reencrypted: hex(again),
      });
    }
    const jsFrames = [];
    for (const f of data.js_frames) {
      const material = materials.get(f.kid);
      jsFrames.push(hex(await S.encrypt(material, BigInt(f.ctr), unhex(f.metadata), unhex(f.plaintext))));
    }
    return {
      passphrase_key: hex(passphraseKey),
      base_keys: baseKeys,
      rust_frames: rustFrames,
      js_frames: jsFrames,
      pbkdf2_ms: pbkdf2Ms,
    };
  };

  // ============================================================================ hostile input

  // sframe.js on garbage, directly: every truncation and every one-bit flip of a valid frame,
  // every config byte with short and long tails, and inputs of the wrong type. Nothing may
  // throw and nothing but the untouched frame may decrypt.
  window.runHostile = async () => {
    const suite = S.AES_128_GCM_SHA256_128;
    const kid = 0x1234n;
    const material = await S.importKeySalt(suite, kid, crypto.getRandomValues(new Uint8Array(32)));
    const metadata = Uint8Array.of(1, 2, 3);
    const plaintext = crypto.getRandomValues(new Uint8Array(40));
    const valid = await S.encrypt(material, 77n, metadata, plaintext);
    const inputs = [];
    for (let len = 0; len < valid.length; len += 1) inputs.push(valid.slice(0, len));
    for (let bit = 0; bit < valid.length * 8; bit += 1) {
      const flipped = valid.slice();
      flipped[bit >> 3] ^= 1 << (bit & 7);
      inputs.push(flipped);
    }
    for (let config = 0; config < 256; config += 1) {
      for (const tail of [0, 1, 7, 8, 16, 17, 40]) {
        inputs.push(Uint8Array.of(config, ...crypto.getRandomValues(new Uint8Array(tail))));
      }
    }
    const result = { cases: 0, threw: 0, accepted: 0, reasons: {}, errors: [] };
    const tally = (outcome) => {
      result.cases += 1;
      if (outcome.ok) result.accepted += 1;
      else result.reasons[outcome.reason] = (result.reasons[outcome.reason] || 0) + 1;
    };
    for (const input of inputs) {
      try {
        tally(await S.decrypt(material, metadata, input));
      } catch (e) {
        result.threw += 1;
        if (result.errors.length < 5) result.errors.push(String(e));
      }
    }
    for (const input of [null, undefined, 42, "frame", new ArrayBuffer(8), [0x10, 0x00]]) {
      try {
        tally(S.parseHeader(input));
      } catch (e) {
        result.threw += 1;
        if (result.errors.length < 5) result.errors.push(String(e));
      }
    }
    // Wrong metadata: the AAD covers it.
    tally(await S.decrypt(material, Uint8Array.of(1, 2, 4), valid));
    const control = await S.decrypt(material, metadata, valid);
    result.control = control.ok && hex(control.plaintext) === hex(plaintext);
    return result;
  };

  window.fnvSamples = () => ["", "a", "foobar"].map((s) => S.fnv1a64(new TextEncoder().encode(s)));

  // ============================================================================ media

  // One page, five participants, each its own worker (a worker holds one passphrase):
  //   alice  sends, passphrase P, to each of the others on its own pair of peer connections
  //   bob    passphrase P: must decode, and decrypt exactly what alice encoded
  //   carol  passphrase Q: must decode nothing and report cannot-decrypt
  //   dave   no passphrase, told alice encrypts: must decode nothing
  //   eve    passphrase P, frames tampered with before decryption: counted failures only
  const RECEIVERS = ["bob", "carol", "dave", "eve"];
  const media = { workers: {}, pairs: {}, stream: null };

  function startWorker(name) {
    const worker = new Worker("/test-worker.js");
    const record = { worker, statuses: [], errors: [], uncaught: [], pending: [], flooded: [] };
    worker.onerror = (e) => record.uncaught.push(`onerror: ${e.message}`);
    worker.onmessage = (e) => {
      const m = e.data;
      if (m.type === "status") record.statuses.push({ id: m.id, state: m.state });
      else if (m.type === "error") record.errors.push(m.reason);
      else if (m.type === "uncaught") record.uncaught.push(m.reason);
      else if (m.type === "stats") record.pending.splice(0).forEach((resolve) => resolve(m.transforms));
      else if (m.type === "flood") record.flooded.splice(0).forEach((resolve) => resolve(m));
    };
    media.workers[name] = record;
    return record;
  }

  function workerStats(record) {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no stats from the worker in 5 s")), 5000);
      record.pending.push((transforms) => {
        clearTimeout(timer);
        resolve(transforms);
      });
      record.worker.postMessage({ type: "stats" });
    });
  }

  const randomSenderId = () => {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    bytes[7] &= 0xfe; // video KID; audio is this ^ 1
    return hex(bytes);
  };

  function preferVp8(transceiver) {
    const codecs = RTCRtpReceiver.getCapabilities("video").codecs.filter((c) =>
      ["video/vp8", "video/rtx"].includes(c.mimeType.toLowerCase()),
    );
    transceiver.setCodecPreferences(codecs);
  }

  function gatheringComplete(pc) {
    if (pc.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, 5000);
      pc.addEventListener("icegatheringstatechange", () => {
        if (pc.iceGatheringState === "complete") {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  function play(track) {
    const el = document.createElement(track.kind);
    el.autoplay = true;
    el.muted = track.kind === "video";
    el.srcObject = new MediaStream([track]);
    document.body.appendChild(el);
    el.play().catch((err) => note(`${track.kind} play: ${err}`));
  }

  // alice -> `name` on a pair of peer connections, with the transforms on both ends.
  async function connect(name, tamper) {
    const tx = new RTCPeerConnection();
    const rx = new RTCPeerConnection();
    for (const track of media.stream.getTracks()) {
      const transceiver = tx.addTransceiver(track, { direction: "sendonly", streams: [media.stream] });
      const options = { role: "encrypt", kind: track.kind, id: `${name}:${track.kind}` };
      transceiver.sender.transform = new RTCRtpScriptTransform(media.workers.alice.worker, options);
      if (track.kind === "video") preferVp8(transceiver);
    }
    rx.ontrack = (e) => {
      const options = { role: "decrypt", kind: e.track.kind, id: `${name}:${e.track.kind}`, tamper };
      e.receiver.transform = new RTCRtpScriptTransform(media.workers[name].worker, options);
      play(e.track);
    };
    await tx.setLocalDescription();
    await gatheringComplete(tx);
    await rx.setRemoteDescription(tx.localDescription);
    await rx.setLocalDescription();
    await gatheringComplete(rx);
    await tx.setRemoteDescription(rx.localDescription);
    media.pairs[name] = { tx, rx };
  }

  window.startMedia = async (passphrase, otherPassphrase, room) => {
    if (!window.RTCRtpScriptTransform) throw new Error("RTCRtpScriptTransform is not available");
    media.stream = await navigator.mediaDevices.getUserMedia({
      audio: true,
      video: { width: { ideal: 320 }, height: { ideal: 240 }, frameRate: { ideal: 15 } },
    });
    for (const name of ["alice", ...RECEIVERS]) startWorker(name);
    const w = media.workers;
    media.aliceId = randomSenderId();
    w.alice.worker.postMessage({ type: "passphrase", room, passphrase, senderId: media.aliceId });
    w.bob.worker.postMessage({ type: "passphrase", room, passphrase, senderId: randomSenderId() });
    const other = { type: "passphrase", room, passphrase: otherPassphrase, senderId: randomSenderId() };
    w.carol.worker.postMessage(other);
    w.eve.worker.postMessage({ type: "passphrase", room, passphrase, senderId: randomSenderId() });
    for (const kind of ["audio", "video"]) {
      w.dave.worker.postMessage({ type: "expect", id: `dave:${kind}`, encrypted: true });
      w.bob.worker.postMessage({ type: "expect", id: `bob:${kind}`, encrypted: true });
    }
    for (const name of RECEIVERS) await connect(name, name === "eve");
    note("media started");
    return { aliceId: media.aliceId };
  };

  // Key rotation: alice and bob move to a new passphrase (alice with a new sender id).
  window.rotate = (passphrase, room) => {
    media.aliceId = randomSenderId();
    media.workers.alice.worker.postMessage({ type: "passphrase", room, passphrase, senderId: media.aliceId });
    const bob = { type: "passphrase", room, passphrase, senderId: randomSenderId() };
    media.workers.bob.worker.postMessage(bob);
    return { aliceId: media.aliceId };
  };

  // E2EE off: alice sends clear; dave hears from signaling that she no longer encrypts.
  window.goClear = () => {
    media.workers.alice.worker.postMessage({ type: "passphrase", passphrase: null });
    for (const kind of ["audio", "video"]) {
      media.workers.dave.worker.postMessage({ type: "expect", id: `dave:${kind}`, encrypted: false });
    }
  };

  async function rtpStats(pc, type) {
    const out = {};
    (await pc.getStats()).forEach((s) => {
      if (s.type !== type) return;
      out[s.kind] = {
        packets: s.packetsReceived ?? s.packetsSent,
        framesDecoded: s.framesDecoded,
        framesEncoded: s.framesEncoded,
        keyFramesDecoded: s.keyFramesDecoded,
        totalSamplesReceived: s.totalSamplesReceived,
        concealedSamples: s.concealedSamples,
      };
    });
    return out;
  }

  // test-worker.js's flood of fresh KIDs, in participant `name`'s worker (E2EE on).
  window.runFlood = (name, count) => {
    const record = media.workers[name];
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("no flood result in 20 s")), 20000);
      record.flooded.push((result) => {
        clearTimeout(timer);
        resolve(result);
      });
      record.worker.postMessage({ type: "flood", count });
    });
  };

  window.mediaReport = async () => {
    const alice = await workerStats(media.workers.alice);
    const pairs = {};
    for (const name of RECEIVERS) {
      const { tx, rx } = media.pairs[name];
      const receiver = await workerStats(media.workers[name]);
      pairs[name] = {
        connection: rx.connectionState,
        inbound: await rtpStats(rx, "inbound-rtp"),
        outbound: await rtpStats(tx, "outbound-rtp"),
        sender: { audio: alice[`${name}:audio`] || null, video: alice[`${name}:video`] || null },
        receiver: { audio: receiver[`${name}:audio`] || null, video: receiver[`${name}:video`] || null },
      };
    }
    const workers = {};
    for (const [name, r] of Object.entries(media.workers)) {
      workers[name] = { statuses: r.statuses, errors: r.errors, uncaught: r.uncaught };
    }
    return { aliceId: media.aliceId, pairs, workers, csp: cspViolations, log: log.slice(-20) };
  };
})();

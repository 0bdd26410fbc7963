// The meeting page: start page, pre-join, lobby and password prompts, and the meeting itself.
// Plain script, no build step. The signaling protocol is signaling/PROTOCOL.md; everything
// the page does on the wire follows it. Sections, top to bottom:
//
//   limits     the string limits of PROTOCOL.md, checked before anything is sent
//   state      the one state object the UI renders from, and the test snapshot of it
//   protocol   the WebSocket connection (hello, JSON frames, 64 KiB limit)
//   media      camera and microphone, and the speaking-time meter used in P2P mode
//   p2p        one RTCPeerConnection to the other member, perfect negotiation
//   bridge     one RTCPeerConnection to the bridge, offers per epoch, mid -> participant
//   e2ee       end-to-end encryption: frame transforms (e2ee-worker.js) and their state
//   meeting    the controller: joining, server messages, topology changes, actions
//   ui         DOM rendering and event wiring
//   hooks      window.meetingTest for the automated tests, and boot
//
// Privacy: nothing is stored (no localStorage, no cookies), nothing is written to the console,
// and no request leaves for another origin (index.html's Content-Security-Policy enforces it).
"use strict";

(() => {
  // ============================================================================== limits

  const PROTOCOL_VERSION = 1;
  const LIMITS = Object.freeze({
    name: 64,
    email: 128,
    chat: 4000,
    password: 128,
    roomMin: 3,
    roomMax: 64,
    frameBytes: 64 * 1024,
    speakingMs: 10000,
  });
  const SPEAKING_REPORT_MS = 2000;
  // RMS of the microphone signal (full scale 1.0) above which we count the time as speaking:
  // about -36 dBFS, above room noise and below normal speech.
  const SPEAKING_RMS = 0.016;

  // Rust's `chars().count()` counts code points; so do we (a string's .length counts UTF-16
  // units, which would reject names with emoji that the server accepts).
  const charCount = (s) => [...s].length;

  // What the user types becomes a room name the way PROTOCOL.md says: lowercase, spaces to '-'.
  function normalizeRoom(input) {
    return String(input).trim().toLowerCase().replace(/\s+/g, "-");
  }

  function roomProblem(room) {
    if (room.length < LIMITS.roomMin) return `at least ${LIMITS.roomMin} characters`;
    if (room.length > LIMITS.roomMax) return `at most ${LIMITS.roomMax} characters`;
    if (!/^[a-z0-9-]+$/.test(room)) return "only letters a-z, digits and -";
    return null;
  }

  function lengthProblem(value, max, label) {
    return charCount(value) > max ? `${label}: at most ${max} characters` : null;
  }

  const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
  const strOrNull = (v) => (typeof v === "string" ? v : null);
  const isId = (v) => typeof v === "string" && v.length > 0 && v.length <= 64;

  // =============================================================================== state

  // One object; every change goes through `changed()`, which schedules a render.
  const state = {
    screen: "start", // what state() reports; the UI may show "connecting" under "prejoin"
    view: "start", // the section on screen
    room: null,
    id: null,
    moderator: null,
    mode: null,
    epoch: null,
    participants: [], // {id, name, email, audio, video, e2ee}, self included
    chat: [], // {from, name, text, at, private, to}
    password: false,
    lobby: false,
    knocking: [], // {id, name}
    speakers: [], // {id, ms}
    dominant: null,
    lastError: null, // {code, message}
    retryAt: 0, // Date.now() after which a rate-limited join may be retried
    iceServers: [],
    remote: new Map(), // participant id -> {audio: MediaStreamTrack|null, video: ...}
    notice: "", // one line on the pre-join screen ("You left the meeting.")
    panel: null, // "chat" | "stats" | "mod" | null
    unread: 0,
  };

  let renderQueued = false;
  function changed() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => {
      renderQueued = false;
      ui.render();
    });
  }

  const self = () => state.participants.find((p) => p.id === state.id) || null;
  const participant = (id) => state.participants.find((p) => p.id === id) || null;
  const others = () => state.participants.filter((p) => p.id !== state.id);
  const isModerator = () => state.id !== null && state.moderator === state.id;

  // A short in-memory trace for debugging tests: event kinds, modes and epochs only; never
  // names, e-mails, chat text or passwords.
  const trace = [];
  function note(event) {
    trace.push(`${(performance.now() / 1000).toFixed(3)} ${event}`);
    if (trace.length > 200) trace.shift();
  }

  function snapshot() {
    return {
      screen: state.screen,
      room: state.room,
      id: state.id,
      moderator: state.moderator,
      isModerator: isModerator(),
      mode: state.mode,
      epoch: state.epoch,
      participants: state.participants.map((p) => ({ id: p.id, name: p.name })),
      media: Object.fromEntries(state.participants.map((p) => [p.id, { audio: p.audio, video: p.video }])),
      e2ee: {
        supported: e2ee.supported,
        enabled: e2ee.enabled,
        // participant id -> {on: what the server says, state: what this page sees}
        participants: Object.fromEntries(state.participants.map((p) => [p.id, { on: p.e2ee, state: e2eeState(p) }])),
      },
      chat: state.chat.map((c) => ({
        from: c.from, name: c.name, text: c.text, private: c.private, to: c.to, at: c.at,
      })),
      password: state.password,
      lobby: state.lobby,
      knocking: state.knocking.map((k) => ({ id: k.id, name: k.name })),
      speakers: state.speakers.map((s) => ({ id: s.id, ms: s.ms })),
      dominant: state.dominant,
      lastError: state.lastError ? { ...state.lastError } : null,
      retryAfterMs: Math.max(0, state.retryAt - Date.now()),
    };
  }

  // ============================================================================ protocol

  function wsUrl() {
    return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}/ws`;
  }

  const encoder = new TextEncoder();

  // One WebSocket. Sends `hello` when open; hands every well-formed JSON object with a `type`
  // to onMessage; calls onClose once, unless we closed it ourselves.
  class Connection {
    constructor(url, onMessage, onClose) {
      this.closed = false;
      this.ws = new WebSocket(url); // throws on a malformed URL: the caller shows the error
      this.ws.onopen = () => {
        note("ws open");
        this.send({ type: "hello", version: PROTOCOL_VERSION });
      };
      this.ws.onmessage = (e) => {
        if (this.closed || typeof e.data !== "string") return;
        let msg;
        try {
          msg = JSON.parse(e.data);
        } catch {
          return;
        }
        if (isObject(msg) && typeof msg.type === "string") onMessage(msg);
      };
      // An `error` event is always followed by `close`; the close handler does the work.
      this.ws.onclose = (e) => {
        if (this.closed) return;
        this.closed = true;
        note(`ws closed ${e.code}`);
        onClose(e);
      };
    }

    get open() {
      return !this.closed && this.ws.readyState === WebSocket.OPEN;
    }

    // false when not sent: closed, or over the frame limit (the server would reject it and
    // count a protocol error against us).
    send(msg) {
      if (!this.open) return false;
      const text = JSON.stringify(msg);
      if (encoder.encode(text).length > LIMITS.frameBytes) {
        note(`frame too large: ${msg.type}`);
        return false;
      }
      this.ws.send(text);
      return true;
    }

    close() {
      if (this.closed) return;
      this.closed = true;
      try {
        this.ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  // `ice_servers` as RTCIceServer objects; anything malformed is left out rather than making
  // RTCPeerConnection throw.
  function sanitizeIceServers(list) {
    if (!Array.isArray(list)) return [];
    const out = [];
    for (const s of list) {
      if (!isObject(s)) continue;
      const urls = typeof s.urls === "string" ? [s.urls]
        : Array.isArray(s.urls) ? s.urls.filter((u) => typeof u === "string") : [];
      if (!urls.length) continue;
      const server = { urls };
      if (typeof s.username === "string") server.username = s.username;
      if (typeof s.credential === "string") server.credential = s.credential;
      out.push(server);
    }
    return out;
  }

  // =============================================================================== media

  // Camera and microphone. Muting is `track.enabled = false` (the connection keeps its tracks,
  // so no renegotiation): PROTOCOL.md's `media` message tells the others.
  const media = {
    stream: null,
    pending: null,
    generation: 0, // bumped by stop(), so a getUserMedia that resolves late is discarded
    problem: null, // why there is no camera or microphone, for the pre-join notice
    audioOn: true,
    videoOn: true,

    get audioTrack() {
      return this.stream ? this.stream.getAudioTracks()[0] || null : null;
    },
    get videoTrack() {
      return this.stream ? this.stream.getVideoTracks()[0] || null : null;
    },

    acquire() {
      if (this.stream) return Promise.resolve(this.stream);
      if (this.pending) return this.pending;
      const generation = this.generation;
      this.pending = this.open().then((stream) => {
        if (generation !== this.generation) {
          if (stream) stream.getTracks().forEach((t) => t.stop());
          return null;
        }
        this.pending = null;
        this.stream = stream;
        this.apply();
        changed();
        return stream;
      });
      return this.pending;
    },

    async open() {
      if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
        this.problem = "Camera and microphone need a secure (https) page.";
        return null;
      }
      // A modest size: in bridge mode every participant decodes everyone else.
      const video = { width: { ideal: 640 }, height: { ideal: 360 }, frameRate: { ideal: 24 } };
      // Fall back to what exists: many laptops have a microphone and no camera.
      const attempts = [{ audio: true, video }, { audio: true }, { video }];
      let lastError = null;
      for (const constraints of attempts) {
        try {
          const stream = await navigator.mediaDevices.getUserMedia(constraints);
          this.problem = constraints.audio && constraints.video ? null
            : constraints.audio ? "No camera: you join with your microphone only."
              : "No microphone: you join with your camera only.";
          return stream;
        } catch (e) {
          lastError = e;
          // Denied by the user: asking again for less would only prompt again.
          if (e && e.name === "NotAllowedError") break;
        }
      }
      this.problem = lastError && lastError.name === "NotAllowedError"
        ? "Camera and microphone are blocked: others will not see or hear you."
        : "No camera or microphone found: others will not see or hear you.";
      return null;
    },

    apply() {
      if (this.audioTrack) this.audioTrack.enabled = this.audioOn;
      if (this.videoTrack) this.videoTrack.enabled = this.videoOn;
    },

    stop() {
      this.generation++;
      this.pending = null;
      if (this.stream) this.stream.getTracks().forEach((t) => t.stop());
      this.stream = null;
      changed();
    },
  };

  // One AudioContext for the page, created (or resumed) from a click where possible: browsers
  // keep a context suspended until the user has interacted with the page.
  let sharedAudioContext = null;
  function audioContext() {
    const Ctx = window.AudioContext || window.webkitAudioContext;
    if (!Ctx) return null;
    if (!sharedAudioContext) {
      try {
        sharedAudioContext = new Ctx();
      } catch {
        return null;
      }
    }
    if (sharedAudioContext.state === "suspended") sharedAudioContext.resume().catch(() => {});
    return sharedAudioContext;
  }

  // Our own speaking time in P2P mode (the bridge measures it in bridge mode): an AnalyserNode
  // on the microphone, sampled every 100 ms; time with the RMS over the threshold counts, time
  // muted does not. A timer rather than requestAnimationFrame, which stops in background tabs.
  class SpeakingMeter {
    constructor(track) {
      this.track = track;
      this.ms = 0;
      this.ctx = audioContext();
      if (!this.ctx) return;
      this.source = this.ctx.createMediaStreamSource(new MediaStream([track]));
      this.analyser = this.ctx.createAnalyser();
      this.analyser.fftSize = 1024;
      this.source.connect(this.analyser);
      this.buffer = new Float32Array(this.analyser.fftSize);
      this.last = performance.now();
      this.timer = setInterval(() => this.sample(), 100);
    }

    sample() {
      const now = performance.now();
      // A throttled timer must not turn one loud sample into seconds of speech.
      const elapsed = Math.min(now - this.last, 250);
      this.last = now;
      if (!this.track.enabled || this.track.readyState !== "live") return;
      this.analyser.getFloatTimeDomainData(this.buffer);
      let sum = 0;
      for (const v of this.buffer) sum += v * v;
      if (Math.sqrt(sum / this.buffer.length) > SPEAKING_RMS) this.ms += elapsed;
    }

    // The time since the last call, within PROTOCOL.md's 0-10000.
    take() {
      const ms = Math.min(Math.max(Math.round(this.ms), 0), LIMITS.speakingMs);
      this.ms = 0;
      return ms;
    }

    stop() {
      clearInterval(this.timer);
      if (this.source) this.source.disconnect();
    }
  }

  // ================================================================================= p2p

  // Two members: one connection to the peer, perfect negotiation (the W3C pattern). The server
  // says who is polite; the impolite peer ignores a colliding offer, the polite one rolls back.
  // Everything, including our own offers, runs through one queue, so the handlers never
  // interleave and `makingOffer` is only needed as the pattern states it.
  //
  // The first exchange avoids glare on purpose: the impolite peer offers, and the polite peer
  // adds its own tracks only when that offer arrives (or after POLITE_WAIT_MS without one).
  // Rolling back an *initial* offer leaves Chromium's ICE gathering stuck ("gathering", no
  // candidate ever; seen with Chromium 156 in about half of the simultaneous starts), and both
  // peers start at the same moment on every `mode` message. Later collisions (ICE restarts,
  // a late track) roll back re-offers, which is harmless, and perfect negotiation resolves them.
  const POLITE_WAIT_MS = 4000;

  class P2PSession {
    constructor({ peer, polite, epoch, iceServers, stream, send, onTrack, onChange }) {
      this.peer = peer;
      this.polite = polite;
      this.epoch = epoch;
      this.stream = stream;
      this.sendSignal = send;
      this.closed = false;
      this.makingOffer = false;
      this.ignoreOffer = false;
      this.tracksAdded = false;
      this.queue = Promise.resolve();
      this.transforms = new Transforms();

      const pc = (this.pc = new RTCPeerConnection({ iceServers }));
      if (polite) {
        this.waitTimer = setTimeout(() => this.run(async () => this.addLocalMedia()), POLITE_WAIT_MS);
      } else {
        this.addLocalMedia();
      }

      pc.onnegotiationneeded = () => {
        this.run(async () => {
          // The event may be stale by the time the queue reaches it; the browser fires it
          // again once stable if negotiation is still needed.
          if (pc.signalingState !== "stable") return;
          this.makingOffer = true;
          try {
            await pc.setLocalDescription();
            this.sendSdp();
          } finally {
            this.makingOffer = false;
          }
        });
      };
      pc.onicecandidate = ({ candidate }) => {
        if (candidate) this.send({ candidate: candidate.toJSON() });
      };
      pc.ontrack = ({ track, receiver }) => {
        if (this.closed) return;
        this.transforms.receive(receiver, track.kind, this.peer);
        onTrack(this.peer, track);
      };
      pc.oniceconnectionstatechange = () => {
        note(`p2p ice ${pc.iceConnectionState}`);
        // A lost path (network change): restart ICE on the same connection.
        if (pc.iceConnectionState === "failed") pc.restartIce();
        onChange();
      };
    }

    // Our tracks, once. After a remote offer, addTrack reuses the transceivers that offer created
    // (one m-line per kind each way); otherwise it adds new ones and negotiation follows.
    addLocalMedia() {
      if (this.tracksAdded || this.closed) return;
      this.tracksAdded = true;
      clearTimeout(this.waitTimer);
      const pc = this.pc;
      if (this.stream) {
        for (const track of this.stream.getTracks()) this.transforms.send(pc.addTrack(track, this.stream), track.kind);
      }
      // Without a camera or microphone of our own, still receive the peer's.
      for (const kind of ["audio", "video"]) {
        if (!pc.getTransceivers().some((t) => t.receiver.track.kind === kind)) {
          pc.addTransceiver(kind, { direction: "recvonly" });
        }
      }
      // Receivers get their transform now, not in ontrack: on the offering side ontrack fires
      // after the answer has set the receive streams up, too late for Chromium to route their
      // frames through a transform (they would reach the decoder still encrypted).
      for (const t of pc.getTransceivers()) this.transforms.receive(t.receiver, t.receiver.track.kind, this.peer);
    }

    run(task) {
      this.queue = this.queue
        .then(() => (this.closed ? undefined : task()))
        .catch((e) => note(`p2p error ${e && e.name}`));
      return this.queue;
    }

    send(data) {
      if (this.closed) return;
      note(`p2p send ${data.sdp ? data.sdp.type : "candidate"}`);
      this.sendSignal({ type: "signal", to: this.peer, data, epoch: this.epoch });
    }

    sendSdp() {
      const d = this.pc.localDescription;
      if (d) this.send({ sdp: { type: d.type, sdp: d.sdp } });
    }

    handle(data) {
      this.run(() => this.apply(data));
    }

    async apply(data) {
      const pc = this.pc;
      note(`p2p got ${isObject(data.sdp) ? data.sdp.type : "candidate"} in ${pc.signalingState}`);
      if (isObject(data.sdp)) {
        const { type, sdp } = data.sdp;
        if ((type !== "offer" && type !== "answer") || typeof sdp !== "string") return;
        const readyForOffer = !this.makingOffer && pc.signalingState === "stable";
        const collision = type === "offer" && !readyForOffer;
        this.ignoreOffer = !this.polite && collision;
        if (this.ignoreOffer) return;
        if (type === "answer" && pc.signalingState !== "have-local-offer") return; // stray
        await pc.setRemoteDescription({ type, sdp }); // a polite collision rolls back implicitly
        if (type === "offer") {
          this.addLocalMedia();
          await pc.setLocalDescription();
          this.sendSdp();
        }
      } else if (isObject(data.candidate)) {
        try {
          await pc.addIceCandidate(data.candidate);
        } catch {
          // Candidates of an offer we ignored fail here; that is expected.
        }
      }
    }

    // Every inbound stream of this connection is the peer's.
    ownerOf() {
      return this.peer;
    }

    close() {
      this.closed = true;
      clearTimeout(this.waitTimer);
      this.transforms.drop();
      this.pc.close();
    }
  }

  // ============================================================================== bridge

  // Three or more members: one connection to the bridge. Own tracks sendonly; one recvonly
  // audio + video pair per other member; the server's `answer` says which mid carries whom.
  // On `renegotiate` we offer again on the same connection, reusing pairs (and setting the
  // spare ones inactive), so the browser keeps its transport, keys and decoders.
  class BridgeSession {
    constructor({ iceServers, stream, send, onMedia, onChange }) {
      this.sendOffer = send;
      this.onMedia = onMedia;
      this.closed = false;
      this.queue = Promise.resolve();
      this.pairs = []; // [{audio: RTCRtpTransceiver, video: RTCRtpTransceiver}]
      this.pendingEpoch = null;
      this.tracks = []; // the last answer's [{mid, id, kind}]
      this.ssrcMid = new Map(); // SSRC -> mid, from the last answer's a=ssrc lines
      this.transforms = new Transforms();

      const pc = (this.pc = new RTCPeerConnection({
        iceServers,
        bundlePolicy: "max-bundle",
        rtcpMuxPolicy: "require",
      }));
      if (stream) {
        for (const kind of ["audio", "video"]) {
          for (const track of stream.getTracks().filter((t) => t.kind === kind)) {
            const transceiver = pc.addTransceiver(track, { direction: "sendonly", streams: [stream] });
            preferBridgeCodecs(transceiver, kind);
            this.transforms.send(transceiver.sender, kind);
          }
        }
      }
      // The answer drives the mapping; ontrack only tells us a receiver became live.
      pc.ontrack = () => {
        if (!this.closed) onChange();
      };
      pc.oniceconnectionstatechange = () => {
        note(`bridge ice ${pc.iceConnectionState}`);
        onChange();
      };
      // The server drives negotiation (mode / renegotiate); transceiver changes we make wait
      // for its next epoch.
      pc.onnegotiationneeded = null;
    }

    run(task) {
      this.queue = this.queue
        .then(() => (this.closed ? undefined : task()))
        .catch((e) => note(`bridge error ${e && e.name}`));
      return this.queue;
    }

    // `countOthers` is read when the offer is made, not when it was asked for: the member list
    // may have changed while an earlier offer was in flight.
    offer(epoch, countOthers) {
      return this.run(() => this.makeOffer(epoch, countOthers()));
    }

    async makeOffer(epoch, count) {
      const pc = this.pc;
      // A pair the answer rejected (port 0) is stopped for good; drop it and its partner.
      this.pairs = this.pairs.filter((p) => {
        if (!isStopped(p.audio) && !isStopped(p.video)) return true;
        for (const t of [p.audio, p.video]) if (!isStopped(t)) t.stop();
        return false;
      });
      while (this.pairs.length < count) {
        const pair = {
          audio: pc.addTransceiver("audio", { direction: "recvonly" }),
          video: pc.addTransceiver("video", { direction: "recvonly" }),
        };
        preferBridgeCodecs(pair.audio, "audio");
        preferBridgeCodecs(pair.video, "video");
        // Whom a pair carries is known only from the answer; until then, nobody.
        this.transforms.receive(pair.audio.receiver, "audio", null);
        this.transforms.receive(pair.video.receiver, "video", null);
        this.pairs.push(pair);
      }
      this.pairs.forEach((pair, i) => {
        const direction = i < count ? "recvonly" : "inactive";
        for (const t of [pair.audio, pair.video]) if (t.direction !== direction) t.direction = direction;
      });
      // A newer epoch while our previous offer waits for its answer: that answer, if it comes,
      // is for an old epoch. The new offer simply replaces the pending one (JSEP allows
      // have-local-offer -> have-local-offer). No rollback: rolling back the connection's first
      // offer leaves Chromium's ICE agent dead (no checks ever; Chromium 156).
      await pc.setLocalDescription(await pc.createOffer());
      if (this.closed) return;
      this.pendingEpoch = epoch;
      const sdp = pc.localDescription.sdp;
      note(`bridge offer epoch ${epoch} pairs ${count}/${this.pairs.length} bytes ${sdp.length}`);
      if (!this.sendOffer({ type: "offer", sdp, epoch })) {
        ui.toast("This meeting is too large for the connection offer: media may be missing.");
      }
    }

    answer(msg) {
      return this.run(async () => {
        if (msg.epoch !== this.pendingEpoch || this.pc.signalingState !== "have-local-offer") {
          note(`bridge answer for epoch ${msg.epoch} ignored`);
          return;
        }
        await this.pc.setRemoteDescription({ type: "answer", sdp: msg.sdp });
        this.pendingEpoch = null;
        this.tracks = Array.isArray(msg.tracks)
          ? msg.tracks.filter((t) => isObject(t) && typeof t.mid === "string" && isId(t.id)
            && (t.kind === "audio" || t.kind === "video"))
          : [];
        this.ssrcMid = ssrcMids(msg.sdp);
        note(`bridge answer epoch ${msg.epoch} tracks ${this.tracks.length}`);
        this.assignOwners();
        this.onMedia(this.remoteMedia());
      });
    }

    // Each receiver's transform learns whose frames it now decrypts (a pair is reused for
    // another member after someone leaves).
    assignOwners() {
      const owners = new Map(this.tracks.map((t) => [t.mid, t.id]));
      for (const t of this.pc.getTransceivers()) {
        this.transforms.setOwner(t.receiver, (t.mid !== null && owners.get(t.mid)) || null);
      }
    }

    // participant id -> {audio, video}: the receiver tracks of the mids the answer assigned.
    // A receiver's track object stays the same across renegotiations; only who it carries
    // changes, which is why this is recomputed from every answer.
    remoteMedia() {
      const byMid = new Map();
      for (const t of this.pc.getTransceivers()) if (t.mid !== null) byMid.set(t.mid, t);
      const out = new Map();
      for (const { mid, id, kind } of this.tracks) {
        const t = byMid.get(mid);
        if (!t || t.receiver.track.kind !== kind) continue;
        if (!out.has(id)) out.set(id, { audio: null, video: null });
        out.get(id)[kind] = t.receiver.track;
      }
      return out;
    }

    // The participant an inbound-rtp stats entry belongs to: by SSRC (exact, from the answer's
    // a=ssrc lines), else by the stats' mid, else by the receiver's track.
    ownerOf(s) {
      let mid = this.ssrcMid.get(s.ssrc);
      if (mid === undefined) mid = typeof s.mid === "string" ? s.mid : undefined;
      if (mid === undefined && s.trackIdentifier) {
        const t = this.pc.getTransceivers().find((x) => x.receiver.track.id === s.trackIdentifier);
        if (t) mid = t.mid;
      }
      const entry = this.tracks.find((t) => t.mid === mid && t.kind === s.kind);
      return entry ? entry.id : null;
    }

    close() {
      this.closed = true;
      this.transforms.drop();
      this.pc.close();
    }
  }

  function isStopped(t) {
    return t.currentDirection === "stopped" || t.direction === "stopped";
  }

  // The bridge forwards the sender's encoded frames (it renumbers payload types, it does not
  // transcode), so everyone must send a codec every receiver decodes: Opus and VP8 (+ its RTX)
  // only. It also keeps the offer small: with every codec Chromium offers, a video m-section is
  // several KB and a large meeting would exceed the 64 KiB frame limit.
  function preferBridgeCodecs(transceiver, kind) {
    if (!transceiver.setCodecPreferences || !window.RTCRtpReceiver || !RTCRtpReceiver.getCapabilities) return;
    const caps = RTCRtpReceiver.getCapabilities(kind);
    if (!caps) return;
    const wanted = kind === "audio" ? ["audio/opus"] : ["video/vp8", "video/rtx"];
    const codecs = caps.codecs.filter((c) => wanted.includes(c.mimeType.toLowerCase()));
    if (!codecs.some((c) => c.mimeType.toLowerCase() !== "video/rtx")) return; // keep the defaults
    try {
      transceiver.setCodecPreferences(codecs);
    } catch {
      // An older browser: its defaults are used.
    }
  }

  // SSRC -> mid from an SDP's a=ssrc lines (API.md: receivers demultiplex by SSRC).
  function ssrcMids(sdp) {
    const out = new Map();
    let mid = null;
    for (const line of String(sdp).split(/\r?\n/)) {
      if (line.startsWith("m=")) mid = null;
      else if (line.startsWith("a=mid:")) mid = line.slice(6).trim();
      else if (mid !== null && line.startsWith("a=ssrc:")) {
        const ssrc = Number.parseInt(line.slice(7), 10);
        if (Number.isFinite(ssrc)) out.set(ssrc, mid);
      }
    }
    return out;
  }

  // ================================================================================ e2ee

  // End-to-end encryption (PROTOCOL.md, "End-to-end encryption"). The frames are encrypted and
  // decrypted in e2ee-worker.js through RTCRtpScriptTransform; this side gives every sender and
  // receiver a transform, hands the passphrase to the worker (and keeps no copy), tells each
  // receiver's transform whether the server says its member encrypts, and shows the worker's
  // per-receiver state on the tiles. Transforms are attached whether or not encryption is on
  // (they pass frames through while it is off), so turning it on needs no renegotiation.
  const e2ee = {
    supported: typeof window.RTCRtpScriptTransform === "function" && typeof Worker === "function",
    worker: null,
    enabled: false,
    nextId: 0,
    transforms: new Map(), // transform id -> {role, kind, owner (participant id), state}
    statsWaiters: [],
  };
  const PASSPHRASE_MIN = 8;
  const PASSPHRASE_MAX = 256;

  function e2eeWorker() {
    if (!e2ee.worker) {
      e2ee.worker = new Worker("/e2ee-worker.js");
      e2ee.worker.onmessage = ({ data }) => onWorkerMessage(data);
    }
    return e2ee.worker;
  }

  function onWorkerMessage(msg) {
    if (!isObject(msg)) return;
    if (msg.type === "status") {
      const t = e2ee.transforms.get(msg.id);
      if (t && typeof msg.state === "string" && t.state !== msg.state) {
        t.state = msg.state;
        note(`e2ee ${t.role} ${t.kind} ${msg.state}`);
        changed();
      }
    } else if (msg.type === "stats") {
      e2ee.statsWaiters.splice(0).forEach((resolve) => resolve(msg));
    }
  }

  // The transforms of one RTCPeerConnection, by the sender or receiver they sit on.
  class Transforms {
    constructor() {
      this.ids = new Map(); // RTCRtpSender | RTCRtpReceiver -> transform id
    }

    send(sender, kind) {
      this.attach(sender, "encrypt", kind, state.id);
    }

    receive(receiver, kind, owner) {
      if (this.ids.has(receiver)) this.setOwner(receiver, owner);
      else this.attach(receiver, "decrypt", kind, owner);
    }

    attach(target, role, kind, owner) {
      if (!e2ee.supported || this.ids.has(target)) return;
      const id = `t${++e2ee.nextId}`;
      try {
        target.transform = new RTCRtpScriptTransform(e2eeWorker(), { role, kind, id });
      } catch (e) {
        note(`e2ee attach failed ${e && e.name}`);
        return;
      }
      this.ids.set(target, id);
      e2ee.transforms.set(id, { role, kind, owner, state: "clear" });
      if (role === "decrypt") tellExpectation(id);
    }

    setOwner(receiver, owner) {
      const id = this.ids.get(receiver);
      const t = id && e2ee.transforms.get(id);
      if (!t || t.owner === owner) return;
      // The state stays the worker's last report: it reports again only when it changes, which
      // it does as soon as the new sender's frames fail (or pass in clear).
      t.owner = owner;
      tellExpectation(id);
    }

    drop() {
      for (const id of this.ids.values()) e2ee.transforms.delete(id);
      this.ids.clear();
    }
  }

  // Whether a receiver's frames should be encrypted: its member said so to the server. A frame
  // that does not decrypt is then dropped, never shown as garbage.
  function tellExpectation(id) {
    const t = e2ee.transforms.get(id);
    if (!t || t.role !== "decrypt" || !e2ee.worker) return;
    const p = t.owner ? participant(t.owner) : null;
    e2ee.worker.postMessage({ type: "expect", id, encrypted: !!(p && p.e2ee) });
  }

  function tellAllExpectations() {
    for (const id of e2ee.transforms.keys()) tellExpectation(id);
  }

  // What a tile shows for member `p`: "off" (not encrypting), "waiting" (encrypting, no frame
  // decrypted yet), "decrypting", "cannot-decrypt"; for ourselves "encrypting" or "off".
  function e2eeState(p) {
    if (p.id === state.id) return e2ee.enabled ? "encrypting" : "off";
    const states = [...e2ee.transforms.values()].filter((t) => t.role === "decrypt" && t.owner === p.id)
      .map((t) => t.state);
    if (states.includes("cannot-decrypt")) return "cannot-decrypt";
    if (!p.e2ee) return "off";
    return states.includes("decrypting") ? "decrypting" : "waiting";
  }

  // A fresh random key id for our video (audio uses it + 1): never reused, so no key and nonce
  // repeat even when the room name and passphrase come back (sframe/src/sender_keys.rs).
  function randomSenderId() {
    const bytes = crypto.getRandomValues(new Uint8Array(8));
    bytes[7] &= 0xfe;
    return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
  }

  function e2eeStats() {
    if (!e2ee.worker) return Promise.resolve({ type: "stats", transforms: {} });
    return new Promise((resolve) => {
      e2ee.statsWaiters.push(resolve);
      e2ee.worker.postMessage({ type: "stats" });
      setTimeout(() => resolve({ type: "stats", transforms: {}, error: "no answer from the worker" }), 3000);
    }).then((stats) => {
      // Which member each receiver carries, from this side's bookkeeping.
      const owners = Object.fromEntries([...e2ee.transforms].map(([id, t]) => [id, t.owner]));
      return { ...stats, owners };
    });
  }

  // ============================================================================= meeting

  const meeting = {
    conn: null,
    phase: "idle", // idle | connecting | lobby | joined | leaving
    params: null, // {name, email, password} of the current or last join, in memory only
    p2p: null,
    bridge: null,
    // Signals that arrive before our own `mode` message (the peer may be quicker), or from a
    // member who is not our current peer yet; replayed when P2P with that member starts.
    signalBuffer: [],
    meter: null,
    speakingTimer: null,
    connectTimer: null,
    leaveTimer: null,
    outcomeWaiters: [],
    leaveWaiters: [],
  };

  function send(msg) {
    return meeting.conn ? meeting.conn.send(msg) : false;
  }

  // ---- joining

  function validateJoin({ name, email, password }) {
    return lengthProblem(name, LIMITS.name, "Name")
      || lengthProblem(email, LIMITS.email, "E-mail")
      || lengthProblem(password, LIMITS.password, "Password");
  }

  async function join(opts = {}) {
    if (!state.room) return { ok: false, error: "no room: open /<room> first" };
    if (meeting.phase !== "idle") return { ok: false, error: `already ${meeting.phase}` };
    const params = {
      name: String(opts.name ?? "").trim(),
      email: String(opts.email ?? "").trim(),
      password: String(opts.password ?? ""),
    };
    const problem = validateJoin(params);
    if (problem) {
      state.lastError = { code: "invalid", message: problem };
      ui.showPrejoinError(problem, params);
      return { ok: false, error: problem };
    }
    meeting.params = params;
    state.lastError = null;
    state.notice = "";
    audioContext(); // from the click, if this is one
    meeting.phase = "connecting";
    setView("connecting");
    await media.acquire();
    if (meeting.phase !== "connecting") return snapshot(); // left meanwhile
    connect();
    return waitOutcome();
  }

  function connect() {
    closeConnection();
    meeting.phase = "connecting";
    let conn = null;
    try {
      conn = new Connection(
        wsUrl(),
        (msg) => {
          if (conn === meeting.conn) onMessage(msg);
        },
        (e) => {
          if (conn === meeting.conn) onClosed(e);
        },
      );
    } catch {
      fail("connection", "The meeting server address is not valid.");
      return;
    }
    meeting.conn = conn;
    clearTimeout(meeting.connectTimer);
    meeting.connectTimer = setTimeout(() => {
      if (meeting.conn === conn && meeting.phase === "connecting") {
        closeConnection();
        fail("connection", "The meeting server did not answer.");
      }
    }, 15000);
  }

  function closeConnection() {
    clearTimeout(meeting.connectTimer);
    if (meeting.conn) meeting.conn.close();
    meeting.conn = null;
  }

  // Resolves act.join / act.retryPassword when the attempt has an outcome.
  function waitOutcome() {
    return new Promise((resolve) => {
      const waiter = { resolve };
      meeting.outcomeWaiters.push(waiter);
      setTimeout(() => settleOutcome(waiter), 20000);
    });
  }

  // All waiters, or only `only` (its timeout), unless that one was settled already.
  function settleOutcome(only) {
    let waiters;
    if (only) {
      const i = meeting.outcomeWaiters.indexOf(only);
      if (i < 0) return;
      waiters = meeting.outcomeWaiters.splice(i, 1);
    } else {
      waiters = meeting.outcomeWaiters.splice(0);
    }
    const snap = snapshot();
    for (const w of waiters) w.resolve(snap);
  }

  // ---- server messages

  function onMessage(msg) {
    switch (msg.type) {
      case "welcome": return onWelcome(msg);
      case "lobby": return onLobby();
      case "joined": return onJoined(msg);
      case "error": return onError(msg);
      case "left": return finishLeave();
      default:
        if (meeting.phase === "joined") onMeetingMessage(msg);
    }
  }

  function onWelcome(msg) {
    if (meeting.phase !== "connecting") return;
    if (msg.version !== PROTOCOL_VERSION) {
      closeConnection();
      fail("version", "The meeting server speaks another protocol version.");
      return;
    }
    clearTimeout(meeting.connectTimer);
    state.iceServers = sanitizeIceServers(msg.ice_servers);
    const { name, email, password } = meeting.params;
    const joinMsg = { type: "join", room: state.room };
    if (name) joinMsg.name = name;
    if (email) joinMsg.email = email;
    if (password) joinMsg.password = password;
    send(joinMsg);
  }

  function onLobby() {
    if (meeting.phase !== "connecting") return;
    meeting.phase = "lobby";
    note("lobby");
    setView("lobby");
    settleOutcome();
  }

  function onJoined(msg) {
    if (meeting.phase !== "connecting" && meeting.phase !== "lobby") return;
    if (!isId(msg.id)) return;
    resetMeetingState();
    state.id = msg.id;
    state.moderator = strOrNull(msg.moderator);
    state.participants = (Array.isArray(msg.participants) ? msg.participants : [])
      .map(sanitizeParticipant).filter(Boolean);
    if (!self()) {
      const { name, email } = meeting.params;
      state.participants.unshift({
        id: state.id, name: name || null, email: email || null, audio: true, video: true, e2ee: false,
      });
    }
    state.chat = (Array.isArray(msg.chat) ? msg.chat : [])
      .map((c) => sanitizeChat(c, false)).filter(Boolean);
    state.password = msg.password === true;
    state.lobby = msg.lobby === true;
    state.speakers = sanitizeSpeakers(msg.speakers);
    meeting.phase = "joined";
    note(`joined, ${state.participants.length} members`);
    if (e2ee.enabled) {
      send({ type: "e2ee", enabled: true });
      self().e2ee = true;
    }
    setView("meeting");
    syncMediaState();
    settleOutcome();
  }

  function onError(msg) {
    const code = typeof msg.code === "string" ? msg.code : "unknown";
    const message = typeof msg.message === "string" ? msg.message : "";
    state.lastError = { code, message };
    note(`error ${code}`);
    if (code === "rate_limited") {
      const ms = Number(msg.retry_after_ms);
      state.retryAt = Date.now() + (Number.isFinite(ms) && ms > 0 ? Math.min(ms, 86400000) : 10000);
    }
    if (meeting.phase === "joined") {
      // In the meeting, protocol errors are ours (a race with a topology change, say) and mean
      // nothing to the user; anything else is worth a line.
      if (code !== "bad_message" && code !== "bad_state") ui.toast(errorText(code, message).text);
      changed();
      return;
    }
    if (meeting.phase === "leaving" || meeting.phase === "idle") return;

    // Joining or waiting in the lobby: this attempt is over. A retry opens a new connection
    // (PROTOCOL.md allows one `join` per connection).
    closeConnection();
    meeting.phase = "idle";
    if (code === "password") {
      setView("password");
    } else if (code === "denied") {
      media.stop();
      setView("denied");
    } else {
      media.stop();
      setView("error");
    }
    settleOutcome();
  }

  function onClosed(e) {
    if (meeting.phase === "leaving") {
      finishLeave();
      return;
    }
    const wasJoined = meeting.phase === "joined";
    if (meeting.phase === "idle") return;
    meeting.conn = null;
    teardownMeeting();
    media.stop();
    meeting.phase = "idle";
    fail("connection", wasJoined
      ? "The connection to the meeting was lost."
      : e.code === 1008 ? "The meeting server closed the connection." : "Cannot reach the meeting server.");
  }

  function fail(code, message) {
    state.lastError = { code, message };
    meeting.phase = "idle";
    setView("error");
    settleOutcome();
  }

  function onMeetingMessage(msg) {
    switch (msg.type) {
      case "participant_joined": {
        const p = sanitizeParticipant(msg.participant);
        if (!p) return;
        const existing = participant(p.id);
        if (existing) Object.assign(existing, p);
        else state.participants.push(p);
        tellAllExpectations();
        break;
      }
      case "participant_updated": {
        const p = sanitizeParticipant(msg.participant);
        const existing = p && participant(p.id);
        if (existing && p.id !== state.id) Object.assign(existing, p);
        else if (existing) existing.name = p.name; // our own mute and e2ee state are ours to know
        tellAllExpectations();
        break;
      }
      case "participant_left": {
        if (!isId(msg.id)) return;
        state.participants = state.participants.filter((p) => p.id !== msg.id);
        state.remote.delete(msg.id);
        if (meeting.p2p && meeting.p2p.peer === msg.id) stopSessions();
        if (ui.chatRecipient() === msg.id) ui.resetChatRecipient();
        break;
      }
      case "moderator":
        if (!isId(msg.id)) return;
        state.moderator = msg.id;
        // Knocks were addressed to the previous moderator's view; start clean.
        if (!isModerator()) {
          state.knocking = [];
          if (state.panel === "mod") state.panel = null;
        }
        break;
      case "knock":
        if (!isId(msg.id) || state.knocking.some((k) => k.id === msg.id)) return;
        state.knocking.push({ id: msg.id, name: strOrNull(msg.name) });
        ui.toast(`${displayName(strOrNull(msg.name))} is waiting to join.`);
        break;
      case "lobby_left":
        state.knocking = state.knocking.filter((k) => k.id !== msg.id);
        break;
      case "settings":
        if (typeof msg.password === "boolean") state.password = msg.password;
        if (typeof msg.lobby === "boolean") state.lobby = msg.lobby;
        break;
      case "chat": {
        const c = sanitizeChat(msg, msg.private === true);
        if (!c) return;
        state.chat.push(c);
        if (state.panel !== "chat" && c.from !== state.id) state.unread++;
        break;
      }
      case "speakers":
        state.speakers = sanitizeSpeakers(msg.speakers);
        state.dominant = isId(msg.dominant) ? msg.dominant : null;
        break;
      case "mode": onMode(msg); break;
      case "signal": onSignal(msg); break;
      case "answer":
        if (meeting.bridge && typeof msg.sdp === "string") meeting.bridge.answer(msg);
        break;
      case "renegotiate": onRenegotiate(msg); break;
      default:
        return; // unknown types are ignored (a newer server)
    }
    changed();
  }

  function sanitizeParticipant(p) {
    if (!isObject(p) || !isId(p.id)) return null;
    return {
      id: p.id,
      name: strOrNull(p.name),
      email: strOrNull(p.email),
      audio: p.audio !== false,
      video: p.video !== false,
      e2ee: p.e2ee === true,
    };
  }

  function sanitizeChat(c, isPrivate) {
    if (!isObject(c) || typeof c.text !== "string") return null;
    return {
      from: strOrNull(c.from),
      name: strOrNull(c.name),
      text: c.text,
      at: Number.isFinite(c.at) ? c.at : Date.now(),
      private: isPrivate,
      // The recipient of a private message (the server names it in both copies).
      to: isPrivate && isId(c.to) ? c.to : null,
    };
  }

  function sanitizeSpeakers(list) {
    return (Array.isArray(list) ? list : [])
      .filter((s) => isObject(s) && isId(s.id) && Number.isFinite(s.ms))
      .map((s) => ({ id: s.id, ms: s.ms }));
  }

  // ---- media topology

  function onMode(msg) {
    if (!Number.isFinite(msg.epoch)) return;
    // Epochs only grow; an older or repeated one is a leftover.
    if (state.epoch !== null && msg.epoch <= state.epoch) return;
    state.epoch = msg.epoch;
    note(`mode ${msg.mode} epoch ${msg.epoch}`);
    if (msg.mode === "p2p") {
      state.mode = "p2p";
      startP2P(isId(msg.peer) ? msg.peer : null, msg.polite === true, msg.epoch);
    } else if (msg.mode === "bridge") {
      state.mode = "bridge";
      startBridge(msg.epoch);
    }
  }

  function onRenegotiate(msg) {
    if (!Number.isFinite(msg.epoch)) return;
    if (state.epoch !== null && msg.epoch <= state.epoch) return;
    state.epoch = msg.epoch;
    note(`renegotiate epoch ${msg.epoch}`);
    if (meeting.bridge) meeting.bridge.offer(msg.epoch, () => others().length);
    else if (state.mode === "bridge") startBridge(msg.epoch); // we missed nothing but a session
  }

  function stopSessions() {
    if (meeting.p2p) meeting.p2p.close();
    if (meeting.bridge) meeting.bridge.close();
    meeting.p2p = null;
    meeting.bridge = null;
    state.remote.clear();
    stopSpeakingReports();
    changed();
  }

  function startP2P(peer, polite, epoch) {
    stopSessions();
    if (!peer) {
      meeting.signalBuffer = [];
      return; // alone in the room: nothing to connect
    }
    meeting.p2p = new P2PSession({
      peer,
      polite,
      epoch,
      iceServers: state.iceServers,
      stream: media.stream,
      send,
      onTrack: (id, track) => {
        const entry = state.remote.get(id) || { audio: null, video: null };
        entry[track.kind] = track;
        state.remote.set(id, entry);
        changed();
      },
      onChange: changed,
    });
    const early = meeting.signalBuffer.filter((s) => s.from === peer && s.epoch === epoch);
    meeting.signalBuffer = [];
    for (const s of early) meeting.p2p.handle(s.data);
    startSpeakingReports();
  }

  function startBridge(epoch) {
    stopSessions();
    // Signals before a bridge `mode` belong to the P2P connection that just ended.
    meeting.signalBuffer = [];
    const session = new BridgeSession({
      iceServers: state.iceServers,
      stream: media.stream,
      send,
      onMedia: (byId) => {
        if (meeting.bridge !== session) return;
        state.remote = byId;
        changed();
      },
      onChange: changed,
    });
    meeting.bridge = session;
    session.offer(epoch, () => others().length);
  }

  // A signal belongs to the P2P connection of its epoch. One for a later epoch arrived before
  // our own `mode` (the peer read it first): keep it until that connection starts. One for an
  // earlier epoch is for a connection that has ended (the server drops those, but it cannot
  // see what crossed on the wire) and would confuse the current one.
  function onSignal(msg) {
    if (!isId(msg.from) || !isObject(msg.data) || !Number.isFinite(msg.epoch)) return;
    const p2p = meeting.p2p;
    if (p2p && p2p.peer === msg.from && p2p.epoch === msg.epoch) {
      p2p.handle(msg.data);
    } else if (msg.epoch > (state.epoch ?? 0) && meeting.signalBuffer.length < 500) {
      meeting.signalBuffer.push({ from: msg.from, epoch: msg.epoch, data: msg.data });
    }
  }

  function startSpeakingReports() {
    if (meeting.speakingTimer) return;
    const track = media.audioTrack;
    try {
      meeting.meter = track ? new SpeakingMeter(track) : null;
    } catch {
      meeting.meter = null;
    }
    meeting.speakingTimer = setInterval(() => {
      if (state.mode !== "p2p" || meeting.phase !== "joined") return;
      send({ type: "speaking", ms: meeting.meter ? meeting.meter.take() : 0 });
    }, SPEAKING_REPORT_MS);
  }

  function stopSpeakingReports() {
    clearInterval(meeting.speakingTimer);
    meeting.speakingTimer = null;
    if (meeting.meter) meeting.meter.stop();
    meeting.meter = null;
  }

  // ---- leaving

  function resetMeetingState() {
    stopSessions();
    Object.assign(state, {
      id: null, moderator: null, mode: null, epoch: null, participants: [], chat: [],
      password: false, lobby: false, knocking: [], speakers: [], dominant: null,
      panel: null, unread: 0,
    });
    state.remote = new Map();
    meeting.signalBuffer = [];
  }

  // Everything about the meeting leaves memory and the page with it, the passphrase's keys too.
  function teardownMeeting() {
    resetMeetingState();
    if (e2ee.worker) e2ee.worker.postMessage({ type: "passphrase", passphrase: null });
    e2ee.enabled = false;
    ui.clearMeeting();
  }

  function leave() {
    return new Promise((resolve) => {
      meeting.leaveWaiters.push(resolve);
      if ((meeting.phase === "joined" || meeting.phase === "lobby") && send({ type: "leave" })) {
        meeting.phase = "leaving";
        note("leaving");
        // The server answers `left` and closes; do not wait for ever if it does not.
        meeting.leaveTimer = setTimeout(finishLeave, 3000);
      } else {
        finishLeave();
      }
    });
  }

  function finishLeave() {
    clearTimeout(meeting.leaveTimer);
    closeConnection();
    teardownMeeting();
    media.stop();
    meeting.phase = "idle";
    meeting.outcomeWaiters.splice(0).forEach((w) => w.resolve(snapshot()));
    if (state.room) {
      state.notice = "You left the meeting.";
      setView("prejoin");
    } else {
      setView("start");
    }
    const snap = snapshot();
    meeting.leaveWaiters.splice(0).forEach((resolve) => resolve(snap));
  }

  // ---- actions (the UI and window.meetingTest.act both call these)

  function syncMediaState() {
    if (meeting.phase !== "joined") return;
    const audio = !!media.audioTrack && media.audioOn;
    const video = !!media.videoTrack && media.videoOn;
    const me = self();
    if (me && me.audio === audio && me.video === video) return;
    if (send({ type: "media", audio, video }) && me) {
      me.audio = audio;
      me.video = video;
    }
    changed();
  }

  function setMic(on) {
    media.audioOn = !!on;
    media.apply();
    syncMediaState();
    changed();
  }

  function setCamera(on) {
    media.videoOn = !!on;
    media.apply();
    syncMediaState();
    changed();
  }

  // Turns end-to-end encryption on with `passphrase`, changes it (a new key and key id: the
  // rotation), or turns it off (null or ""). The worker derives the keys; no copy stays here.
  // Before joining (on the pre-join screen) it takes effect from the first frame: the server
  // learns it with `joined`.
  function setE2ee(passphrase) {
    if (!state.room || (meeting.phase !== "joined" && meeting.phase !== "idle")) {
      return { ok: false, error: `not now (${meeting.phase})` };
    }
    if (!e2ee.supported) {
      return { ok: false, error: "This browser cannot encrypt media end to end (no RTCRtpScriptTransform)." };
    }
    const off = passphrase === null || passphrase === undefined || passphrase === "";
    const value = off ? null : String(passphrase);
    if (value !== null && charCount(value) < PASSPHRASE_MIN) {
      return { ok: false, error: `Passphrase: at least ${PASSPHRASE_MIN} characters` };
    }
    if (value !== null && charCount(value) > PASSPHRASE_MAX) {
      return { ok: false, error: `Passphrase: at most ${PASSPHRASE_MAX} characters` };
    }
    if (meeting.phase === "joined" && !send({ type: "e2ee", enabled: value !== null })) {
      return { ok: false, error: "not connected" };
    }
    e2eeWorker().postMessage(value === null
      ? { type: "passphrase", passphrase: null }
      : { type: "passphrase", room: state.room, passphrase: value, senderId: randomSenderId() });
    e2ee.enabled = value !== null;
    const me = self();
    if (me) me.e2ee = e2ee.enabled;
    note(`e2ee ${e2ee.enabled ? "on" : "off"}`);
    changed();
    return { ok: true };
  }

  function requireJoined() {
    return meeting.phase === "joined" ? null : { ok: false, error: "not in a meeting" };
  }

  function sendChat(text, to) {
    const notJoined = requireJoined();
    if (notJoined) return notJoined;
    text = String(text ?? "");
    if (!text.trim()) return { ok: false, error: "the message is empty" };
    const problem = lengthProblem(text, LIMITS.chat, "Message");
    if (problem) return { ok: false, error: problem };
    const msg = { type: "chat", text };
    if (to !== undefined && to !== null && to !== "") {
      if (!participant(to) || to === state.id) return { ok: false, error: "no such participant" };
      msg.to = to;
    }
    if (!send(msg)) return { ok: false, error: "not connected" };
    return { ok: true };
  }

  // The server decides who may moderate: these send regardless of what we believe our role
  // is, and the UI only offers them to the moderator.
  function setPassword(password) {
    const notJoined = requireJoined();
    if (notJoined) return notJoined;
    const value = password === null || password === undefined || password === "" ? null : String(password);
    if (value !== null) {
      const problem = lengthProblem(value, LIMITS.password, "Password");
      if (problem) return { ok: false, error: problem };
    }
    return send({ type: "set_password", password: value }) ? { ok: true } : { ok: false, error: "not connected" };
  }

  function setLobby(enabled) {
    const notJoined = requireJoined();
    if (notJoined) return notJoined;
    return send({ type: "set_lobby", enabled: !!enabled }) ? { ok: true } : { ok: false, error: "not connected" };
  }

  function decide(type, id) {
    const notJoined = requireJoined();
    if (notJoined) return notJoined;
    if (!isId(id)) return { ok: false, error: "no such participant" };
    return send({ type, id }) ? { ok: true } : { ok: false, error: "not connected" };
  }

  function retryPassword(password) {
    if (meeting.phase !== "idle") return Promise.resolve({ ok: false, error: `already ${meeting.phase}` });
    const params = { ...(meeting.params || { name: "", email: "" }), password: String(password ?? "") };
    return join(params);
  }

  function displayName(name) {
    return name && name.trim() ? name : "Guest";
  }

  function errorText(code, message) {
    switch (code) {
      case "full":
        return { title: "This meeting is full", text: "The room has reached its participant limit." };
      case "rate_limited":
        return { title: "Too many attempts", text: "Too many tries from your network. Please wait a moment." };
      case "unavailable":
        return {
          title: "The meeting cannot start now",
          text: "The server cannot place this meeting at the moment. Try again in a little while.",
        };
      case "version":
        return { title: "This page is out of date", text: "Reload the page to get the current version." };
      case "connection":
        return { title: "Cannot reach the meeting", text: message };
      case "room":
        return { title: "Not a valid room name", text: message };
      case "password":
        return { title: "Wrong password", text: "The password is missing or wrong." };
      default:
        return { title: "Something went wrong", text: message || `The server answered: ${code}.` };
    }
  }

  function setView(view) {
    state.view = view;
    // Connecting is part of getting in; tests see it as the pre-join screen.
    state.screen = view === "connecting" ? "prejoin" : view;
    changed();
  }

  // ================================================================================== ui

  const $ = (id) => document.getElementById(id);

  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") el.className = v;
      else if (k === "text") el.textContent = v;
      else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) el.append(c);
    return el;
  }

  function icon(name) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("aria-hidden", "true");
    const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
    use.setAttribute("href", `#i-${name}`);
    svg.append(use);
    return svg;
  }

  function setIcon(button, name) {
    const use = button.querySelector("use");
    if (use && use.getAttribute("href") !== `#i-${name}`) use.setAttribute("href", `#i-${name}`);
  }

  function formatDuration(ms) {
    const s = Math.floor(ms / 1000);
    const m = Math.floor(s / 60);
    return m >= 60
      ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${String(s % 60).padStart(2, "0")}`
      : `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  function formatTime(at) {
    try {
      return new Date(at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    } catch {
      return "";
    }
  }

  // Starts playback and tells the user when the browser wants a click first (autoplay policy).
  function play(el) {
    const p = el.play();
    if (p && p.catch) {
      p.catch((e) => {
        if (e && e.name === "NotAllowedError") {
          ui.needSound = true;
          changed();
        }
      });
    }
  }

  const ui = {
    tiles: new Map(), // participant id -> tile parts
    chatRendered: 0,
    needSound: false,
    countdown: null,

    bind() {
      // Start page.
      $("start-another").addEventListener("click", () => loadRoomName(true));
      $("start-room").addEventListener("input", () => {
        $("start-room").dataset.touched = "1";
        $("start-error").textContent = "";
      });
      $("start-form").addEventListener("submit", (e) => {
        e.preventDefault();
        const room = normalizeRoom($("start-room").value);
        const problem = roomProblem(room);
        if (problem) {
          $("start-error").textContent = `Room name: ${problem}.`;
          return;
        }
        location.assign(`/${room}`);
      });

      // Pre-join.
      $("prejoin-form").addEventListener("submit", (e) => {
        e.preventDefault();
        join({ name: $("prejoin-name").value, email: $("prejoin-email").value });
      });
      $("prejoin-back").addEventListener("click", () => {
        media.stop();
        location.assign("/");
      });
      $("pre-mic").addEventListener("click", () => setMic(!media.audioOn));
      $("pre-cam").addEventListener("click", () => {
        if (!media.stream) {
          media.videoOn = true;
          media.acquire();
        } else {
          setCamera(!media.videoOn);
        }
      });

      // Password, lobby, error.
      $("password-form").addEventListener("submit", (e) => {
        e.preventDefault();
        const value = $("password-input").value;
        if (!value) {
          $("password-error").textContent = "Enter the password.";
          return;
        }
        const problem = lengthProblem(value, LIMITS.password, "Password");
        if (problem) {
          $("password-error").textContent = problem;
          return;
        }
        $("password-input").value = "";
        retryPassword(value);
      });
      $("password-cancel").addEventListener("click", () => {
        state.notice = "";
        setView("prejoin");
        media.acquire();
      });
      $("lobby-leave").addEventListener("click", () => leave());
      $("error-retry").addEventListener("click", () => {
        if (Date.now() < state.retryAt) return;
        if (meeting.params) join(meeting.params);
        else setView("prejoin");
      });

      // Meeting.
      $("ctl-mic").addEventListener("click", () => setMic(!media.audioOn));
      $("ctl-cam").addEventListener("click", () => setCamera(!media.videoOn));
      $("ctl-chat").addEventListener("click", () => ui.togglePanel("chat"));
      $("ctl-stats").addEventListener("click", () => ui.togglePanel("stats"));
      $("ctl-mod").addEventListener("click", () => ui.togglePanel("mod"));
      $("ctl-e2ee").addEventListener("click", () => ui.togglePanel("e2ee"));
      $("e2ee-form").addEventListener("submit", (e) => {
        e.preventDefault();
        ui.submitE2ee();
      });
      $("e2ee-off").addEventListener("click", () => {
        const r = setE2ee(null);
        $("e2ee-error").textContent = r.ok ? "" : r.error;
      });
      $("ctl-leave").addEventListener("click", () => leave());
      $("panel-close").addEventListener("click", () => ui.togglePanel(null));
      $("copy-link").addEventListener("click", () => {
        const url = `${location.origin}/${state.room}`;
        const done = () => ui.toast("Link copied.");
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(url).then(done, () => ui.toast(url));
        } else {
          ui.toast(url);
        }
      });
      $("sound-banner").addEventListener("click", () => {
        ui.needSound = false;
        audioContext();
        for (const t of ui.tiles.values()) if (t.audio.srcObject) play(t.audio);
        changed();
      });

      $("chat-form").addEventListener("submit", (e) => {
        e.preventDefault();
        ui.submitChat();
      });
      $("chat-text").addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
          e.preventDefault();
          ui.submitChat();
        }
      });
      $("chat-text").addEventListener("input", () => { $("chat-error").textContent = ""; });

      $("mod-password-form").addEventListener("submit", (e) => {
        e.preventDefault();
        const value = $("mod-password").value;
        if (!value) {
          $("mod-error").textContent = "Enter a password, or remove it.";
          return;
        }
        const r = setPassword(value);
        $("mod-error").textContent = r.ok ? "" : r.error;
        if (r.ok) $("mod-password").value = "";
      });
      $("mod-password-clear").addEventListener("click", () => {
        const r = setPassword(null);
        $("mod-error").textContent = r.ok ? "" : r.error;
      });
      $("mod-lobby").addEventListener("change", (e) => {
        setLobby(e.target.checked);
        // The switch shows the room's setting, which the server confirms with `settings`.
        e.target.checked = state.lobby;
      });

      new ResizeObserver(() => ui.layoutStage()).observe($("stage"));
      window.addEventListener("pagehide", () => {
        if (meeting.phase === "joined" || meeting.phase === "lobby") send({ type: "leave" });
      });
    },

    render() {
      const views = ["start", "prejoin", "connecting", "password", "lobby", "denied", "error", "meeting"];
      for (const v of views) {
        const el = $(`screen-${v}`);
        if (el.hidden !== (state.view !== v)) el.hidden = state.view !== v;
      }
      document.title = state.room ? `${state.room} · Meeting` : "Meeting";
      switch (state.view) {
        case "prejoin": ui.renderPrejoin(); break;
        case "connecting":
          $("connecting-text").textContent = meeting.conn ? "Joining…" : "Starting camera and microphone…";
          break;
        case "password": ui.renderPassword(); break;
        case "error": ui.renderError(); break;
        case "meeting": ui.renderMeeting(); break;
        default: break;
      }
      if (state.view !== "prejoin") ui.attachPreview(null);
    },

    attachPreview(track) {
      const video = $("preview-video");
      const current = video.srcObject ? video.srcObject.getVideoTracks()[0] : null;
      if (current === (track || null)) return;
      video.srcObject = track ? new MediaStream([track]) : null;
      if (track) play(video);
    },

    renderPrejoin() {
      $("prejoin-room").textContent = state.room || "";
      const videoLive = !!media.videoTrack && media.videoOn;
      ui.attachPreview(media.videoTrack);
      $("preview-off").hidden = videoLive;
      $("preview-off").firstElementChild.textContent = media.pending ? "Starting camera…"
        : media.stream && !media.videoTrack ? "No camera" : "Camera is off";
      const mic = $("pre-mic");
      const cam = $("pre-cam");
      setIcon(mic, media.audioOn && media.audioTrack ? "mic" : "mic-off");
      setIcon(cam, videoLive ? "cam" : "cam-off");
      mic.classList.toggle("off", !(media.audioOn && media.audioTrack));
      cam.classList.toggle("off", !videoLive);
      mic.disabled = !!media.stream && !media.audioTrack;
      mic.title = media.audioOn ? "Mute microphone" : "Unmute microphone";
      cam.title = media.videoOn ? "Turn camera off" : "Turn camera on";
      const notice = state.notice || media.problem || "";
      $("prejoin-notice").textContent = notice;
      $("prejoin-notice").hidden = !notice;
    },

    showPrejoinError(problem, params) {
      $("prejoin-name").value = params.name;
      $("prejoin-email").value = params.email;
      $("prejoin-error").textContent = problem;
      setView("prejoin");
      media.acquire();
    },

    renderPassword() {
      const wrong = state.lastError && state.lastError.code === "password" && meeting.params && meeting.params.password;
      $("password-error").textContent = wrong ? "That password is not right." : "";
      if (document.activeElement !== $("password-input")) $("password-input").focus();
    },

    renderError() {
      const err = state.lastError || { code: "unknown", message: "" };
      const { title, text } = errorText(err.code, err.message);
      $("error-title").textContent = title;
      const retry = $("error-retry");
      retry.hidden = err.code === "room" || err.code === "version" || !state.room;
      const wait = state.retryAt - Date.now();
      if (err.code === "rate_limited" && wait > 0) {
        const s = Math.ceil(wait / 1000);
        $("error-text").textContent = `${text} You can try again in ${s} second${s === 1 ? "" : "s"}.`;
        retry.disabled = true;
        if (!ui.countdown) {
          ui.countdown = setInterval(() => {
            if (state.view !== "error" || Date.now() >= state.retryAt) {
              clearInterval(ui.countdown);
              ui.countdown = null;
            }
            changed();
          }, 1000);
        }
      } else {
        $("error-text").textContent = text;
        retry.disabled = false;
      }
    },

    renderMeeting() {
      $("meeting-room").textContent = state.room;
      const n = state.participants.length;
      $("meeting-count").textContent = `${n} ${n === 1 ? "person" : "people"}`;
      $("meeting-lock").hidden = !state.password;
      $("meeting-e2ee").hidden = !e2ee.enabled;
      $("meeting-mode").textContent = n < 2 ? "Waiting for others"
        : state.mode === "p2p" ? "Direct" : state.mode === "bridge" ? "Via server" : "Connecting";
      ui.renderTiles();
      ui.renderControls();
      ui.renderPanel();
      $("sound-banner").hidden = !ui.needSound;
    },

    renderControls() {
      const mic = $("ctl-mic");
      const cam = $("ctl-cam");
      const micOn = !!media.audioTrack && media.audioOn;
      const camOn = !!media.videoTrack && media.videoOn;
      setIcon(mic, micOn ? "mic" : "mic-off");
      setIcon(cam, camOn ? "cam" : "cam-off");
      mic.classList.toggle("off", !micOn);
      cam.classList.toggle("off", !camOn);
      mic.setAttribute("aria-pressed", String(micOn));
      cam.setAttribute("aria-pressed", String(camOn));
      mic.disabled = !media.audioTrack;
      cam.disabled = !media.videoTrack;
      mic.title = !media.audioTrack ? "No microphone" : micOn ? "Mute" : "Unmute";
      cam.title = !media.videoTrack ? "No camera" : camOn ? "Turn camera off" : "Turn camera on";
      $("ctl-mod").hidden = !isModerator();
      $("ctl-e2ee").classList.toggle("on", e2ee.enabled);
      for (const [id, panel] of [["ctl-chat", "chat"], ["ctl-stats", "stats"], ["ctl-e2ee", "e2ee"], ["ctl-mod", "mod"]]) {
        $(id).classList.toggle("active", state.panel === panel);
      }
      const unread = $("chat-badge");
      unread.hidden = state.unread === 0;
      unread.textContent = state.unread > 99 ? "99+" : String(state.unread);
      const knocks = $("mod-badge");
      knocks.hidden = state.knocking.length === 0;
      knocks.textContent = String(state.knocking.length);
    },

    // ---- tiles

    renderTiles() {
      const stage = $("stage");
      // Own tile first, then everyone in the order they came.
      const ordered = [...state.participants].sort((a, b) => (a.id === state.id ? -1 : b.id === state.id ? 1 : 0));
      const seen = new Set();
      ordered.forEach((p, index) => {
        seen.add(p.id);
        let tile = ui.tiles.get(p.id);
        if (!tile) {
          tile = ui.createTile(p.id === state.id);
          ui.tiles.set(p.id, tile);
        }
        if (stage.children[index] !== tile.el) stage.insertBefore(tile.el, stage.children[index] || null);
        ui.updateTile(tile, p);
      });
      for (const [id, tile] of ui.tiles) {
        if (seen.has(id)) continue;
        ui.dropTile(tile);
        ui.tiles.delete(id);
      }
      if (stage.dataset.count !== String(ordered.length)) {
        stage.dataset.count = String(ordered.length);
        ui.layoutStage();
      }
    },

    createTile(isSelf) {
      const video = h("video", { autoplay: true, playsinline: true, class: isSelf ? "mirror" : null });
      video.muted = true; // sound comes from the <audio> element (never our own)
      const audio = h("audio", { autoplay: true });
      const initial = h("span", { class: "initial" });
      const name = h("span", { class: "name" });
      const star = h("span", { class: "star", title: "Moderator" }, icon("star"));
      const micOff = h("span", { class: "mic-off", title: "Microphone off" }, icon("mic-off"));
      const lock = h("span", { class: "e2ee-badge" }, icon("shield"));
      const blocked = h("div", { class: "e2ee-blocked", role: "status" });
      const el = h("figure", { class: isSelf ? "tile self" : "tile" },
        video,
        h("div", { class: "placeholder" }, initial),
        blocked,
        h("figcaption", {}, star, lock, name, micOff));
      return { el, video, audio, initial, name, star, micOff, lock, blocked, videoTrack: null, audioTrack: null };
    },

    updateTile(tile, p) {
      const isSelf = p.id === state.id;
      const label = displayName(p.name);
      tile.name.textContent = isSelf ? `${label} (you)` : label;
      tile.el.title = p.email && !isSelf ? `${label} <${p.email}>` : "";
      tile.initial.textContent = [...label][0].toUpperCase();
      tile.el.dataset.id = p.id;

      const tracks = isSelf
        ? { video: media.videoTrack, audio: null }
        : state.remote.get(p.id) || { video: null, audio: null };
      if (tile.videoTrack !== tracks.video) {
        tile.videoTrack = tracks.video;
        tile.video.srcObject = tracks.video ? new MediaStream([tracks.video]) : null;
        if (tracks.video) play(tile.video);
      }
      if (!isSelf && tile.audioTrack !== tracks.audio) {
        tile.audioTrack = tracks.audio;
        // Played, not only attached: Chromium decodes (and counts samples of) played tracks only.
        tile.audio.srcObject = tracks.audio ? new MediaStream([tracks.audio]) : null;
        if (tracks.audio) play(tile.audio);
      }
      const videoOn = isSelf ? !!media.videoTrack && media.videoOn : p.video && !!tracks.video;
      const audioOn = isSelf ? !!media.audioTrack && media.audioOn : p.audio;
      tile.el.classList.toggle("video-off", !videoOn);
      tile.micOff.hidden = audioOn;
      tile.star.hidden = state.moderator !== p.id;
      ui.updateE2eeBadge(tile, p);
      tile.el.classList.toggle("speaking", state.dominant === p.id && state.participants.length > 1);
    },

    // The tile's end-to-end state: a shield while this member's media is encrypted and decrypts
    // (or, for us, while we encrypt), and in place of the picture a clear "cannot decrypt" when
    // frames arrive that our passphrase does not open.
    updateE2eeBadge(tile, p) {
      const st = e2eeState(p);
      tile.el.dataset.e2ee = st;
      tile.lock.hidden = st === "off";
      tile.lock.title = {
        encrypting: "You encrypt end to end",
        decrypting: "End-to-end encrypted",
        waiting: "End-to-end encrypted: waiting for media",
        "cannot-decrypt": "End-to-end encrypted: cannot decrypt",
      }[st] || "";
      tile.lock.classList.toggle("bad", st === "cannot-decrypt");
      const blocked = st === "cannot-decrypt";
      tile.el.classList.toggle("cannot-decrypt", blocked);
      tile.blocked.hidden = !blocked;
      tile.blocked.textContent = !blocked ? ""
        : e2ee.enabled ? "Cannot decrypt: this person uses another passphrase."
          : "Cannot decrypt: this person encrypts end to end. Turn on encryption with their passphrase.";
    },

    dropTile(tile) {
      tile.video.srcObject = null;
      tile.audio.srcObject = null;
      tile.el.remove();
    },

    // Columns and rows that give the tiles (16:9) the most area in the stage.
    layoutStage() {
      const stage = $("stage");
      const n = Math.max(1, ui.tiles.size);
      const w = stage.clientWidth || 1;
      const hgt = stage.clientHeight || 1;
      let best = { cols: 1, rows: n, area: 0 };
      for (let cols = 1; cols <= n; cols++) {
        const rows = Math.ceil(n / cols);
        const tw = w / cols;
        const th = hgt / rows;
        const area = Math.min(tw, th * 16 / 9) * Math.min(th, tw * 9 / 16);
        if (area > best.area) best = { cols, rows, area };
      }
      stage.style.setProperty("--cols", String(best.cols));
      stage.style.setProperty("--rows", String(best.rows));
    },

    clearMeeting() {
      for (const tile of ui.tiles.values()) ui.dropTile(tile);
      ui.tiles.clear();
      $("chat-list").replaceChildren();
      ui.chatRendered = 0;
      $("speaker-list").replaceChildren();
      $("knock-list").replaceChildren();
      $("chat-text").value = "";
      $("mod-password").value = "";
      $("e2ee-passphrase").value = "";
      $("e2ee-error").textContent = "";
      ui.needSound = false;
      ui.resetChatRecipient();
    },

    // ---- side panel

    togglePanel(name) {
      state.panel = state.panel === name ? null : name;
      if (state.panel === "chat") state.unread = 0;
      changed();
      if (state.panel === "chat") queueMicrotask(() => $("chat-text").focus());
    },

    renderPanel() {
      if (state.panel === "mod" && !isModerator()) state.panel = null;
      const panel = state.panel;
      $("panel").hidden = !panel;
      $("screen-meeting").classList.toggle("with-panel", !!panel);
      $("panel-chat").hidden = panel !== "chat";
      $("panel-stats").hidden = panel !== "stats";
      $("panel-mod").hidden = panel !== "mod";
      $("panel-e2ee").hidden = panel !== "e2ee";
      $("panel-title").textContent = {
        chat: "Chat", stats: "Speaking time", mod: "Moderation", e2ee: "End-to-end encryption",
      }[panel] || "";
      // Chat is rendered even when hidden, so history is ready when it opens.
      ui.renderChat();
      if (panel === "stats") ui.renderSpeakers();
      if (panel === "mod") ui.renderModeration();
      if (panel === "e2ee") ui.renderE2ee();
    },

    renderE2ee() {
      $("e2ee-state").textContent = !e2ee.supported
        ? "This browser cannot encrypt media end to end."
        : e2ee.enabled ? "On: your camera and microphone are encrypted end to end."
          : "Off: the server can read your media.";
      $("e2ee-submit").textContent = e2ee.enabled ? "Change" : "Turn on";
      $("e2ee-submit").disabled = !e2ee.supported;
      $("e2ee-off").hidden = !e2ee.enabled;
      const text = {
        off: "not encrypted end to end",
        waiting: "encrypted, waiting for media",
        decrypting: "encrypted, decrypting",
        "cannot-decrypt": "encrypted, cannot decrypt (another passphrase)",
      };
      $("e2ee-list").replaceChildren(...others().map((p) => {
        const st = e2eeState(p);
        return h("li", { class: `e2ee-item ${st}` },
          h("span", { class: "speaker-name", text: displayName(p.name) }),
          h("span", { class: "e2ee-item-state", text: text[st] || st }));
      }));
    },

    submitE2ee() {
      const input = $("e2ee-passphrase");
      if (!input.value) {
        $("e2ee-error").textContent = "Enter a passphrase, or turn encryption off.";
        return;
      }
      const r = setE2ee(input.value);
      $("e2ee-error").textContent = r.ok ? "" : r.error;
      if (r.ok) input.value = "";
    },

    chatRecipient() {
      return $("chat-to").value || null;
    },

    resetChatRecipient() {
      $("chat-to").value = "";
    },

    renderChat() {
      // Recipient choice: everyone, or one other participant privately.
      const select = $("chat-to");
      const wanted = [["", "Everyone"], ...others().map((p) => [p.id, `${displayName(p.name)} (private)`])];
      const current = select.value;
      const same = select.options.length === wanted.length
        && wanted.every(([v, t], i) => select.options[i].value === v && select.options[i].textContent === t);
      if (!same) {
        select.replaceChildren(...wanted.map(([v, t]) => h("option", { value: v, text: t })));
        select.value = wanted.some(([v]) => v === current) ? current : "";
      }

      const list = $("chat-list");
      const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
      for (; ui.chatRendered < state.chat.length; ui.chatRendered++) {
        list.append(ui.chatItem(state.chat[ui.chatRendered]));
      }
      if (nearBottom) list.scrollTop = list.scrollHeight;
    },

    chatItem(c) {
      const mine = c.from === state.id;
      let who = mine ? "You" : displayName(c.name);
      if (c.private) {
        const to = c.to && c.to !== state.id ? participant(c.to) : null;
        who += mine ? ` → ${to ? displayName(to.name) : "private"}` : " → you";
      }
      return h("li", { class: `chat-item${mine ? " mine" : ""}${c.private ? " private" : ""}` },
        h("div", { class: "chat-meta" },
          h("span", { class: "chat-who", text: who }),
          c.private ? h("span", { class: "tag", text: "private" }) : null,
          h("time", { text: formatTime(c.at) })),
        h("p", { class: "chat-text", text: c.text }));
    },

    submitChat() {
      const textarea = $("chat-text");
      const text = textarea.value.trim();
      if (!text) return;
      const r = sendChat(text, ui.chatRecipient());
      if (r.ok) textarea.value = "";
      $("chat-error").textContent = r.ok ? "" : r.error;
    },

    renderSpeakers() {
      const ms = new Map(state.speakers.map((s) => [s.id, s.ms]));
      const rows = state.participants
        .map((p) => ({ p, ms: ms.get(p.id) || 0 }))
        .sort((a, b) => b.ms - a.ms);
      const max = Math.max(1, ...rows.map((r) => r.ms));
      const total = rows.reduce((sum, r) => sum + r.ms, 0);
      $("speaker-list").replaceChildren(...rows.map(({ p, ms: t }) => {
        const bar = h("span", { class: "bar-fill" });
        bar.style.width = `${(100 * t) / max}%`;
        const name = p.id === state.id ? `${displayName(p.name)} (you)` : displayName(p.name);
        const share = total ? ` · ${Math.round((100 * t) / total)}%` : "";
        return h("li", { class: state.dominant === p.id ? "speaker dominant" : "speaker" },
          h("span", { class: "speaker-name", text: name }),
          h("span", { class: "speaker-time", text: `${formatDuration(t)}${share}` }),
          h("span", { class: "bar" }, bar));
      }));
    },

    renderModeration() {
      $("mod-password-state").textContent = state.password
        ? "This meeting has a password; newcomers must give it."
        : "No password: anyone with the link can join.";
      $("mod-password-clear").hidden = !state.password;
      $("mod-lobby").checked = state.lobby;
      $("knock-empty").hidden = state.knocking.length > 0;
      $("knock-list").replaceChildren(...state.knocking.map((k) => h("li", { class: "knock" },
        h("span", { class: "knock-name", text: displayName(k.name) }),
        h("button", { type: "button", class: "secondary small", onclick: () => decide("deny", k.id) }, "Deny"),
        h("button", { type: "button", class: "primary small", onclick: () => decide("admit", k.id) }, "Admit"))));
    },

    toast(text) {
      const el = h("div", { class: "toast", role: "status", text });
      $("toasts").append(el);
      setTimeout(() => el.classList.add("leaving"), 4000);
      setTimeout(() => el.remove(), 4400);
    },
  };

  // Start page: a fresh random name from the daemon.
  async function loadRoomName(force) {
    const input = $("start-room");
    try {
      const res = await fetch("/api/room-name", { cache: "no-store", credentials: "omit" });
      if (!res.ok) throw new Error(String(res.status));
      const body = await res.json();
      const name = isObject(body) && typeof body.name === "string" ? body.name : "";
      if (roomProblem(name)) throw new Error("bad name");
      if (force || !input.dataset.touched) {
        input.value = name;
        delete input.dataset.touched;
      }
      $("start-error").textContent = "";
    } catch {
      if (force) $("start-error").textContent = "Could not get a name from the server; type one instead.";
    }
  }

  // =============================================================================== hooks

  async function collectStats() {
    const out = { mode: state.mode, remoteVideo: {}, remoteAudio: {}, srtpCipher: null };
    const session = meeting.p2p || meeting.bridge;
    if (!session) return out;
    for (const p of others()) {
      out.remoteVideo[p.id] = 0;
      out.remoteAudio[p.id] = 0;
    }
    const report = await session.pc.getStats();
    report.forEach((s) => {
      if (s.type === "inbound-rtp") {
        const id = session.ownerOf(s);
        if (!id) return;
        // The largest counter wins if a participant's stream appears twice (an SSRC that just
        // moved to another mid keeps its old stats entry for a moment).
        if (s.kind === "video") {
          out.remoteVideo[id] = Math.max(out.remoteVideo[id] || 0, s.framesDecoded || 0);
        } else if (s.kind === "audio") {
          out.remoteAudio[id] = Math.max(out.remoteAudio[id] || 0, s.totalSamplesReceived || 0);
        }
      } else if (s.type === "transport" && s.srtpCipher) {
        out.srtpCipher = s.srtpCipher;
      }
    });
    return out;
  }

  window.meetingTest = Object.freeze({
    state: snapshot,
    stats: collectStats,
    trace: () => trace.slice(),
    e2eeStats,
    act: Object.freeze({
      join: (opts) => join(opts || {}),
      sendChat,
      setPassword,
      setLobby,
      admit: (id) => decide("admit", id),
      deny: (id) => decide("deny", id),
      leave,
      retryPassword,
      setMic,
      setCamera,
      setE2ee,
    }),
  });

  function boot() {
    ui.bind();
    let raw;
    try {
      raw = decodeURIComponent(location.pathname.slice(1)).replace(/\/+$/, "");
    } catch {
      raw = location.pathname.slice(1);
    }
    if (!raw) {
      setView("start");
      loadRoomName(false);
      return;
    }
    const room = normalizeRoom(raw);
    const problem = roomProblem(room);
    if (problem) {
      fail("room", `"${raw}" is not a room name: ${problem}.`);
      return;
    }
    state.room = room;
    if (location.pathname !== `/${room}`) history.replaceState(null, "", `/${room}${location.search}`);
    const query = new URLSearchParams(location.search);
    if (query.get("join") === "1") {
      // Kiosks and scripts: straight in, with the name from the URL.
      join({ name: query.get("name") || "", email: query.get("email") || "" });
      return;
    }
    setView("prejoin");
    media.acquire();
  }

  boot();
})();

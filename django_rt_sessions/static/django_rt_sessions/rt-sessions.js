/**
 * django-rt-sessions browser client: a dependency-free ES module (docs/browser-client.md).
 *
 *   import { startTranscription } from "/static/django_rt_sessions/rt-sessions.js";
 *   const handle = await startTranscription({ preset: "dictation", language: "fr" }, {
 *     onDelta: ({ itemId, delta }) => ..., onCompleted: ({ itemId, transcript }) => ..., onError: (err) => ...,
 *   });
 *   ...
 *   handle.close();
 *
 * The site's API (docs/http-api.md) is reached at `baseUrl` (default "/rt/", see configure()) with the session
 * cookie and the CSRF token (the `csrftoken` cookie, or a `csrfToken` option), or with the `headers` (a token
 * or JWT: `{Authorization: "Bearer …"}`) or the `fetch` function a page gives. The overrides object is the
 * request's body: every override the API takes passes through, and the server refuses what it does not know.
 *
 * Every failure is an RtSessionsError whose `code` is the server's stable error code (docs/http-api.md) or
 * one of this module's own (ERROR_CODES below). With an `onError` callback, startTranscription reports every
 * failure there and resolves to null instead of rejecting.
 *
 * Two transports, with the same callbacks and error codes: WebRTC (the SDP offer to `connect.webrtc_url`) and
 * WebSocket (`connect.websocket_url`, the microphone sent as PCM16 24 kHz from an AudioWorklet,
 * rt-sessions-pcm16-worklet.js beside this file). `transport: "auto"` (the default) takes the first of
 * `connect.transports` this browser supports.
 *
 * When the session has no server turn detection (`connect.client_turns`), the client ends turns itself: a
 * local energy detector (TurnDetector) sends `input_audio_buffer.commit` after `silence_duration_ms` of
 * silence following speech, when a turn reaches `max_turn_ms`, on `commit()` and on `close()`.
 *
 * The ephemeral key (`session.client_secret.value`) is only ever sent to the `connect.webrtc_url` or
 * `connect.websocket_url` the server named; this module never logs it.
 */

/**
 * @typedef {Object} Preset
 * @property {string} name
 * @property {string} title
 * @property {string} description
 * @property {boolean} default
 * @property {string[]} overridable  the overrides this preset accepts ("language", "languages", "prompt", …)
 * @property {number} expires_after_seconds
 * @property {Object} session
 */

/**
 * @typedef {Object} ClientTurns  how the client ends turns when the upstream detects none
 * @property {number} silence_duration_ms  commit after this much silence following speech (100–10000)
 * @property {number} max_turn_ms          commit a turn that grows this long (1000–120000)
 */

/**
 * @typedef {Object} ConnectInfo
 * @property {"ga"|"beta"|"relay"} api
 * @property {string} [webrtc_url]     where the browser posts its SDP offer
 * @property {string} [websocket_url]  the realtime WebSocket (wss:, or ws: on loopback)
 * @property {string[]} [transports]   what the session's model supports, preferred first
 * @property {ClientTurns|null} [client_turns]  set when the client must end turns itself
 */

/**
 * @typedef {Object} TranscriptionSession  the server's 201 body (the beta endpoint's "Returns" shape plus `connect`)
 * @property {{value: string, expires_at: number}} client_secret  the ephemeral key and its expiry (Unix seconds)
 * @property {string} preset
 * @property {string|null} id
 * @property {Object|null} [turn_detection]
 * @property {ConnectInfo} connect
 */

/**
 * The request body of POST transcription-sessions/, sent as given (keys whose value is `undefined` left out):
 * `preset` and the overrides the preset allows (`language`, `languages`, `prompt`, `keywords`,
 * `noise_reduction`, and whatever the API takes in the future).
 * @typedef {Object<string, unknown>} SessionRequest
 */

/**
 * @typedef {Object<string, string>|(() => (Object<string, string>|Promise<Object<string, string>>))} HeadersOption
 */

/**
 * @typedef {Object} RequestOptions
 * @property {string} [baseUrl]     overrides the configured base URL for this call
 * @property {string} [csrfToken]   overrides the CSRF token for this call
 * @property {HeadersOption} [headers]  added to the site's API requests (after configure()'s headers)
 * @property {(url: string, init: RequestInit) => Promise<Response>} [fetch]  replaces window.fetch for the
 *   site's API requests (never for the transcription service)
 * @property {RequestCredentials} [credentials]  default: "omit" with an Authorization header, else "same-origin"
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {Object} VadOptions  the local turn detector (docs/browser-client.md#client-turns)
 * @property {number} [thresholdDb]   a 10 ms block is speech above this level, in dBFS (default -50)
 * @property {number} [marginDb]      ... and this far above the tracked noise floor (default 10)
 * @property {number} [minSpeechMs]   the shortest run of such blocks that counts as speech (default 100)
 * @property {number} [clearAfterMs]  audio with no speech in it is cleared from the service's buffer after
 *   this long (default 3000), so a turn does not carry the silence before it
 */

/**
 * @typedef {Object} TranscriptionCallbacks
 * @property {(d: {itemId: string, delta: string}) => void} [onDelta]
 * @property {(c: {itemId: string, transcript: string}) => void} [onCompleted]
 * @property {(e: RtSessionsError) => void} [onError]      every failure, before and after connecting
 * @property {(event: Object) => void} [onEvent]           every server event, parsed
 * @property {(state: string) => void} [onStateChange]     "microphone", "session", "connecting", "connected",
 *   "closing", "closed"
 * @property {(state: string) => void} [onStatus]          the same as onStateChange (its former name)
 * @property {(s: TranscriptionSession) => void} [onSession]  the session, once issued (do not log its key)
 */

/**
 * @typedef {Object} TranscriptionConnection
 * @property {"webrtc"|"websocket"} transport
 * @property {RTCPeerConnection|null} peerConnection  (webrtc)
 * @property {RTCDataChannel|null} dataChannel       (webrtc)
 * @property {WebSocket|null} socket                 (websocket)
 * @property {ClientTurns|null} clientTurns          the turns the client ends itself, or null
 * @property {() => boolean} commit   ends the current turn now (client turns); false when no speech was
 *   heard since the last commit
 * @property {() => Promise<void>} close  stops the audio, commits pending speech and waits (at most
 *   `closeTimeoutMs`) for its transcript, then closes the connection
 */

/** This module's own error codes (the server's are in docs/http-api.md). */
export const ERROR_CODES = Object.freeze([
  "microphone_denied",
  "microphone_unavailable",
  "unsupported_browser",
  "network_error",
  "bad_response",
  "session_expired",
  "connection_failed",
  "realtime_error",
  "aborted",
  "unexpected_error",
]);

/** What `connect.client_turns` holds when the server names no values. */
export const CLIENT_TURN_DEFAULTS = Object.freeze({ silence_duration_ms: 600, max_turn_ms: 15000 });

/** The local turn detector's defaults (VadOptions). */
export const VAD_DEFAULTS = Object.freeze({ thresholdDb: -50, marginDb: 10, minSpeechMs: 100, clearAfterMs: 3000 });

const settings = {
  baseUrl: "/rt/",
  /** @type {string|null} */
  csrfToken: null,
  /** @type {HeadersOption|null} */
  headers: null,
  /** @type {((url: string, init: RequestInit) => Promise<Response>)|null} */
  fetch: null,
  /** @type {RequestCredentials|null} */
  credentials: null,
  connectTimeoutMs: 15000,
  closeTimeoutMs: 10000,
  /** @type {VadOptions} */
  vad: {},
  workletUrl: new URL("./rt-sessions-pcm16-worklet.js", import.meta.url).href,
};

/**
 * Set module-wide options.
 * @param {{baseUrl?: string, csrfToken?: string|null, headers?: HeadersOption|null,
 *   fetch?: ((url: string, init: RequestInit) => Promise<Response>)|null, credentials?: RequestCredentials|null,
 *   connectTimeoutMs?: number, sdpTimeoutMs?: number, closeTimeoutMs?: number, vad?: VadOptions,
 *   workletUrl?: string}} options
 */
export function configure(options = {}) {
  if (options.baseUrl !== undefined) {
    settings.baseUrl = options.baseUrl.endsWith("/") ? options.baseUrl : options.baseUrl + "/";
  }
  for (const name of ["csrfToken", "headers", "fetch", "credentials", "connectTimeoutMs", "closeTimeoutMs",
    "workletUrl"]) {
    if (options[name] !== undefined) settings[name] = options[name];
  }
  if (options.sdpTimeoutMs !== undefined) settings.connectTimeoutMs = options.sdpTimeoutMs;  // its former name
  if (options.vad !== undefined) settings.vad = { ...options.vad };
}

/** An error with the server's stable code (or one of this module's own codes). */
export class RtSessionsError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number|null, retryAfter?: number|null, errors?: Object|null, serviceCode?: string|null,
   *   cause?: unknown}} [extra]
   */
  constructor(code, message, extra = {}) {
    super(message, extra.cause === undefined ? undefined : { cause: extra.cause });
    this.name = "RtSessionsError";
    /** @type {string} */
    this.code = code;
    /** @type {number|null} HTTP status, when the error came from an HTTP answer */
    this.status = extra.status ?? null;
    /** @type {number|null} seconds to wait before trying again (Retry-After), when given */
    this.retryAfter = extra.retryAfter ?? null;
    /** @type {Object<string, string[]>|null} field errors of an `invalid` request */
    this.errors = extra.errors ?? null;
    /** @type {string|null} the `error.code` of the transcription service's error event, when it gave one */
    this.serviceCode = extra.serviceCode ?? null;
  }
}

/**
 * Retry-After as seconds (delta-seconds or HTTP-date), or null.
 * @param {string|null} value
 * @returns {number|null}
 */
export function parseRetryAfter(value) {
  if (value == null || value.trim() === "") return null;
  if (/^\s*\d+\s*$/.test(value)) return parseInt(value, 10);
  const date = Date.parse(value);
  if (Number.isNaN(date)) return null;
  return Math.max(0, Math.ceil((date - Date.now()) / 1000));
}

function csrfTokenFrom(options) {
  if (options.csrfToken) return options.csrfToken;
  if (settings.csrfToken) return settings.csrfToken;
  const match = typeof document === "undefined" ? null : document.cookie.match(/(?:^|;\s*)csrftoken=([^;]*)/);
  return match ? decodeURIComponent(match[1]) : null;
}

function url(path, options) {
  const base = options.baseUrl || settings.baseUrl;
  return (base.endsWith("/") ? base : base + "/") + path;
}

async function headersFrom(option) {
  if (!option) return {};
  const value = typeof option === "function" ? await option() : option;
  if (typeof Headers === "function" && value instanceof Headers) return Object.fromEntries(value.entries());
  return value && typeof value === "object" ? value : {};
}

function hasHeader(headers, name) {
  return Object.keys(headers).some((key) => key.toLowerCase() === name);
}

async function request(path, init, options) {
  let response;
  try {
    const headers = {
      Accept: "application/json",
      ...(init.headers || {}),
      ...(await headersFrom(settings.headers)),
      ...(await headersFrom(options.headers)),
    };
    // A request that carries its own credential (a token, a JWT) needs no cookie, and so no CSRF token: sending
    // neither keeps a site's SessionAuthentication from claiming it (and asking for CSRF) first.
    const credentials = options.credentials || settings.credentials ||
      (hasHeader(headers, "authorization") ? "omit" : "same-origin");
    if (init.method !== "GET" && credentials !== "omit" && !hasHeader(headers, "x-csrftoken")) {
      const token = csrfTokenFrom(options);
      if (token) headers["X-CSRFToken"] = token;
    }
    const fetchFunction = options.fetch || settings.fetch || globalThis.fetch.bind(globalThis);
    response = await fetchFunction(url(path, options), { ...init, headers, credentials, signal: options.signal });
  } catch (error) {
    if (error instanceof RtSessionsError) throw error;  // a page's fetch wrapper may throw its own
    if ((error && error.name === "AbortError") || (options.signal && options.signal.aborted)) {
      throw new RtSessionsError("aborted", "Cancelled.", { cause: error });
    }
    throw new RtSessionsError("network_error", "The server could not be reached.", { cause: error });
  }
  let body = null;
  try {
    body = await response.json();
  } catch (error) {
    body = null;
  }
  if (response.ok && body && typeof body === "object") return body;
  const retryAfter = parseRetryAfter(response.headers.get("Retry-After"));
  if (body && typeof body === "object" && typeof body.code === "string") {
    throw new RtSessionsError(body.code, String(body.detail || body.code), {
      status: response.status,
      retryAfter,
      errors: body.errors || null,
    });
  }
  throw new RtSessionsError("bad_response", `Unexpected answer from the server (HTTP ${response.status}).`, {
    status: response.status,
    retryAfter,
  });
}

/**
 * The active presets this user may use (GET presets/).
 * @param {RequestOptions} [options]
 * @returns {Promise<Preset[]>}
 */
export async function fetchPresets(options = {}) {
  const body = await request("presets/", { method: "GET" }, options);
  return Array.isArray(body.results) ? body.results : [];
}

/** The overrides as the request body: everything given, nothing renamed or filtered by a list of names. */
function requestBody(overrides) {
  if (overrides == null) return {};
  if (typeof overrides !== "object" || Array.isArray(overrides)) {
    throw new RtSessionsError("invalid", "The overrides must be an object, such as { preset: \"dictation\" }.");
  }
  const body = {};
  for (const [name, value] of Object.entries(overrides)) {
    if (value !== undefined) body[name] = value;
  }
  // As in 0.1.0: an empty preset or language means "none chosen", and `noiseReduction` is `noise_reduction`.
  if (body.preset === "" || body.preset === null) delete body.preset;
  if (body.language === "") delete body.language;
  if ("noiseReduction" in body) {
    if (!("noise_reduction" in body)) body.noise_reduction = body.noiseReduction;
    delete body.noiseReduction;
  }
  return body;
}

/**
 * Ask the site for an ephemeral transcription session (POST transcription-sessions/).
 * @param {SessionRequest} [overrides]  the body: `preset` and the overrides (docs/http-api.md)
 * @param {RequestOptions} [options]
 * @returns {Promise<TranscriptionSession>}
 * @throws {RtSessionsError}
 */
export async function createSession(overrides = {}, options = {}) {
  const body = JSON.stringify(requestBody(overrides));
  const session = await request("transcription-sessions/", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body,
  }, options);
  if (!session.client_secret || typeof session.client_secret.value !== "string") {
    throw new RtSessionsError("bad_response", "The server's answer has no client secret.", { status: 201 });
  }
  return session;
}

/**
 * Ask for the microphone. Permission refusals become RtSessionsError("microphone_denied").
 * @param {MediaTrackConstraints|boolean} [audio]
 * @returns {Promise<MediaStream>}
 */
export async function getMicrophone(audio = true) {
  if (typeof navigator === "undefined" || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new RtSessionsError(
      "microphone_unavailable",
      "This browser cannot use a microphone here (a secure context, https or localhost, is required).",
    );
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio });
  } catch (error) {
    const name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError" || name === "PermissionDeniedError") {
      throw new RtSessionsError("microphone_denied", "Microphone access was denied.", { cause: error });
    }
    throw new RtSessionsError("microphone_unavailable", "No usable microphone was found.", { cause: error });
  }
}

function stopStream(stream) {
  if (!stream) return;
  for (const track of stream.getTracks()) track.stop();
}

/** The transports this module speaks, in no particular order; what the browser supports is checked per call. */
export const TRANSPORTS = ["webrtc", "websocket"];

/**
 * Whether this browser can use a transport.
 * @param {"webrtc"|"websocket"} transport
 * @returns {boolean}
 */
export function transportSupported(transport) {
  if (transport === "webrtc") return typeof RTCPeerConnection === "function";
  if (transport === "websocket") {
    return typeof WebSocket === "function" && typeof AudioContext === "function" &&
      typeof AudioWorkletNode === "function";
  }
  return false;
}

/**
 * The transport a connection uses: `requested` ("auto": the first of `connect.transports` this browser
 * supports), checked against what the session's model supports.
 * @param {ConnectInfo} connect
 * @param {"auto"|"webrtc"|"websocket"} [requested]
 * @returns {"webrtc"|"websocket"}
 * @throws {RtSessionsError} connection_failed (the session cannot use it), unsupported_browser
 */
export function chooseTransport(connect, requested = "auto") {
  // A server older than `connect.transports` offered WebRTC only.
  const offered = Array.isArray(connect.transports) ? connect.transports : ["webrtc"];
  if (requested && requested !== "auto") {
    if (!TRANSPORTS.includes(requested)) {
      throw new RtSessionsError("connection_failed", `Unknown transport: ${requested}.`);
    }
    if (!offered.includes(requested)) {
      throw new RtSessionsError(
        "connection_failed",
        `The session's model cannot be used over ${requested} (it offers: ${offered.join(", ") || "nothing"}).`,
      );
    }
    if (!transportSupported(requested)) {
      throw new RtSessionsError("unsupported_browser", `This browser cannot use the ${requested} transport.`);
    }
    return requested;
  }
  const usable = offered.find((transport) => TRANSPORTS.includes(transport) && transportSupported(transport));
  if (!usable) {
    throw new RtSessionsError(
      "unsupported_browser",
      `This browser supports none of the session's transports (${offered.join(", ") || "none"}).`,
    );
  }
  return usable;
}

// ------------------------------------------------------------------------------------------- client turns

/**
 * How the client ends the session's turns: `connect.client_turns` with the defaults filled in, or null when the
 * upstream detects turns. A server that predates `connect.client_turns` says nothing there; a session of its
 * with `turn_detection: null` gets the defaults (else nothing would ever end a turn).
 * @param {TranscriptionSession} session
 * @returns {ClientTurns|null}
 */
export function clientTurnsOf(session) {
  const connect = (session && session.connect) || {};
  if ("client_turns" in connect) {
    return connect.client_turns ? { ...CLIENT_TURN_DEFAULTS, ...connect.client_turns } : null;
  }
  return session && "turn_detection" in session && session.turn_detection === null
    ? { ...CLIENT_TURN_DEFAULTS }
    : null;
}

/**
 * The client's turn detection: fed the level of every 10 ms block of microphone audio (dBFS), it says when to
 * commit a turn and when to clear audio that holds no speech. A block is speech when its level is above
 * `thresholdDb` and `marginDb` above the noise floor (the quietest recent level, rising 1 dB a second);
 * speech is a run of such blocks at least `minSpeechMs` long. Pure logic, no audio APIs: the transports feed
 * it and send what it decides.
 */
export class TurnDetector {
  /**
   * @param {{silenceMs?: number, maxTurnMs?: number, blockMs?: number} & VadOptions} [options]
   */
  constructor(options = {}) {
    const vad = { ...VAD_DEFAULTS };
    for (const [name, value] of Object.entries(options)) if (value !== undefined) vad[name] = value;
    this.silenceMs = vad.silenceMs ?? CLIENT_TURN_DEFAULTS.silence_duration_ms;
    this.maxTurnMs = vad.maxTurnMs ?? CLIENT_TURN_DEFAULTS.max_turn_ms;
    this.blockMs = vad.blockMs ?? 10;
    this.thresholdDb = vad.thresholdDb;
    this.marginDb = vad.marginDb;
    this.minSpeechMs = vad.minSpeechMs;
    this.clearAfterMs = vad.clearAfterMs;
    /** @type {number|null} */
    this.floorDb = null;
    this.runMs = 0;  // the current run of loud blocks
    this.sinceSpeechMs = 0;  // since the end of the last speech
    /** Whether speech was heard since the last commit or clear: a turn is pending. */
    this.speechPending = false;
    /** How long the pending turn is, from its first speech. */
    this.turnMs = 0;
    /** How much audio went out since the last commit or clear. */
    this.bufferedMs = 0;
  }

  /**
   * @param {Iterable<number>} levels  dBFS of consecutive 10 ms blocks
   * @returns {Array<"silence"|"max_turn"|"clear">}  what to send, in order: a commit (with its reason) or a
   *   clear; the detector counts it as done
   */
  feed(levels) {
    const actions = [];
    for (const level of levels) {
      const action = this.block(level);
      if (action) actions.push(action);
    }
    return actions;
  }

  /** @param {number} level  @returns {"silence"|"max_turn"|"clear"|null} */
  block(level) {
    const ms = this.blockMs;
    this.floorDb = this.floorDb === null ? level : Math.min(level, this.floorDb + ms / 1000);
    const loud = level > this.thresholdDb && level > this.floorDb + this.marginDb;
    this.runMs = loud ? this.runMs + ms : 0;
    this.bufferedMs += ms;
    if (this.runMs >= this.minSpeechMs) {
      if (!this.speechPending) {
        this.speechPending = true;
        this.turnMs = Math.min(this.runMs, this.bufferedMs) - ms;
      }
      this.sinceSpeechMs = 0;
    } else {
      this.sinceSpeechMs += ms;
    }
    if (this.speechPending) this.turnMs += ms;
    if (this.speechPending && this.sinceSpeechMs >= this.silenceMs) {
      this.reset();
      return "silence";
    }
    if (this.speechPending && this.turnMs >= this.maxTurnMs) {
      this.reset();
      return "max_turn";
    }
    if (!this.speechPending && this.runMs === 0 && this.bufferedMs >= this.clearAfterMs) {
      this.reset();
      return "clear";
    }
    return null;
  }

  /** The buffer was committed or cleared: a new turn starts (the noise floor and a current run carry on). */
  reset() {
    this.speechPending = false;
    this.turnMs = 0;
    this.bufferedMs = 0;
    this.sinceSpeechMs = 0;
  }
}

// The Realtime API refuses to commit less than 100 ms of audio (input_audio_buffer_commit_empty). Over WebRTC
// the audio reaches it a little after this page counted it, hence a margin there.
const MIN_COMMIT_MS = 100;
const WEBRTC_COMMIT_MARGIN_MS = 200;
const COMPLETED = "conversation.item.input_audio_transcription.completed";
const FAILED = "conversation.item.input_audio_transcription.failed";

/** The client's commits and their outcomes, so that close() can wait for the last transcript. */
function commitTracker() {
  const prefix = "evt_rts_commit_" + Math.random().toString(36).slice(2, 10) + "_";
  let sent = 0;
  let awaiting = 0;
  let wake = null;
  const settle = () => {
    if (wake) wake();
    wake = null;
  };
  return {
    get awaiting() {
      return awaiting;
    },
    /** The event_id of the next commit. */
    next() {
      sent += 1;
      awaiting += 1;
      return prefix + sent;
    },
    /** Every server event: a transcript (or its failure) is the outcome of one commit. */
    observe(event) {
      if (awaiting === 0) return;
      const error = event.type === "error" ? event.error || {} : null;
      const refused = error && typeof error.event_id === "string" && error.event_id.startsWith(prefix);
      if (event.type === COMPLETED || event.type === FAILED || refused) {
        awaiting -= 1;
        if (awaiting === 0) settle();
      }
    },
    /** Resolves when every commit has its outcome, or after `timeoutMs`, or on abandon(). */
    settled(timeoutMs) {
      if (awaiting === 0) return Promise.resolve();
      return new Promise((resolve) => {
        const timer = setTimeout(settle, timeoutMs);
        const previous = wake;
        wake = () => {
          clearTimeout(timer);
          if (previous) previous();
          resolve();
        };
      });
    },
    abandon: settle,
  };
}

function vadOptions(options) {
  return { ...settings.vad, ...(options.vad || {}) };
}

function turnDetectorFor(clientTurns, options) {
  if (!clientTurns) return null;
  return new TurnDetector({
    ...vadOptions(options),
    silenceMs: clientTurns.silence_duration_ms,
    maxTurnMs: clientTurns.max_turn_ms,
  });
}

/**
 * How a connection ends, the same on both transports. `commit()` ends the current turn now (push-to-talk);
 * `close()` ends a last turn that held speech, waits up to closeTimeoutMs for the transcripts still owed
 * (`tracker`), then finishes; `finish()` lets everything go at once. The transport gives `isOpen` and `send`
 * (its data channel or socket), `stopAudio` (the microphone's processing, stopped before a last commit so
 * that the commit ends every frame sent) and `release` (closing the channel or socket).
 */
function connectionEnds({ detector, minCommitMs, isOpen, send, stopAudio, release, callbacks, options }) {
  const tracker = commitTracker();
  let closing = null, closed = false;
  const sendCommit = () => {
    if (isOpen()) send({ type: "input_audio_buffer.commit", event_id: tracker.next() });
  };
  const finish = () => {
    if (closed) return;
    closed = true;
    stopAudio();
    tracker.abandon();
    release();
    notifyState(callbacks, "closed");
  };
  return {
    tracker,
    finish,
    get closing() {
      return closing !== null;
    },
    get closed() {
      return closed;
    },
    /** What the turn detector asks for (TurnDetector.feed): clear the buffer, or commit it. */
    act(action) {
      if (action === "clear") send({ type: "input_audio_buffer.clear" });
      else sendCommit();
    },
    close() {
      if (closing) return closing;
      stopAudio();
      if (detector && detector.speechPending && detector.bufferedMs >= minCommitMs) sendCommit();
      if (tracker.awaiting > 0 && isOpen() && !closed) {
        notifyState(callbacks, "closing");
        closing = tracker.settled(options.closeTimeoutMs ?? settings.closeTimeoutMs).then(finish);
      } else {
        finish();
        closing = Promise.resolve();
      }
      return closing;
    },
    commit() {
      if (!detector || closing || closed || !isOpen()) return false;
      if (!detector.speechPending || detector.bufferedMs < minCommitMs) return false;  // no speech: no turn
      sendCommit();
      detector.reset();
      return true;
    },
  };
}

// -------------------------------------------------------------------------------------------- connecting

function notifyState(callbacks, state) {
  if (callbacks.onStateChange) callbacks.onStateChange(state);
  if (callbacks.onStatus) callbacks.onStatus(state);
}

/** The transcription events, the same for both transports; `observe` sees each event first. */
function eventHandler(callbacks, observe) {
  return (data) => {
    let event;
    try {
      event = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!event || typeof event !== "object") return;
    observe(event);
    if (callbacks.onEvent) callbacks.onEvent(event);
    switch (event.type) {
      case "conversation.item.input_audio_transcription.delta":
        if (callbacks.onDelta) callbacks.onDelta({ itemId: event.item_id, delta: event.delta || "" });
        break;
      case COMPLETED:
        if (callbacks.onCompleted) {
          callbacks.onCompleted({ itemId: event.item_id, transcript: event.transcript || "" });
        }
        break;
      case FAILED:
      case "error": {
        const err = (event.error || {});
        if (callbacks.onError) {
          callbacks.onError(new RtSessionsError("realtime_error", err.message || "The transcription failed.", {
            serviceCode: typeof err.code === "string" ? err.code : null,
          }));
        }
        break;
      }
      default:
        break;
    }
  };
}

/**
 * Open the realtime connection described by `session.connect` and report the transcript.
 *
 * WebRTC: the SDP offer is posted to `connect.webrtc_url` with the ephemeral key as `Authorization: Bearer`.
 * GA (`connect.api === "ga"`) posts to …/v1/realtime/calls; the beta flow posts to the beta endpoint, which the
 * server also gives as `connect.webrtc_url` (…/v1/realtime); the exchange and the event names are the same.
 *
 * WebSocket: `connect.websocket_url` (wss:, or ws: on loopback only) with the subprotocols `realtime` and
 * `openai-insecure-api-key.<key>` (a browser cannot set headers); the microphone goes through an AudioWorklet
 * in a 24 kHz AudioContext and is sent as PCM16 mono little-endian in `input_audio_buffer.append` events.
 * Relay sessions (`connect.api === "relay"`) connect the same way, their ticket as the key.
 *
 * Either way the transcription configuration is bound to the key: no model parameter and no session.update are
 * sent. With client turns (clientTurnsOf) the connection also sends `input_audio_buffer.commit` (and `clear`).
 *
 * @param {TranscriptionSession} session
 * @param {MediaStream} mediaStream  a stream with an audio track (the caller owns it and stops it)
 * @param {TranscriptionCallbacks} [callbacks]
 * @param {{signal?: AbortSignal, timeoutMs?: number, closeTimeoutMs?: number, vad?: VadOptions,
 *   transport?: "auto"|"webrtc"|"websocket"}} [options]
 * @returns {Promise<TranscriptionConnection>}  resolves once connected (the data channel or the socket open)
 * @throws {RtSessionsError} connection_failed, unsupported_browser, session_expired, microphone_unavailable,
 *   aborted
 */
export async function connectTranscription(session, mediaStream, callbacks = {}, options = {}) {
  const connect = session && session.connect;
  if (!connect || (!connect.webrtc_url && !connect.websocket_url)) {
    throw new RtSessionsError("connection_failed", "The session does not say where to connect.");
  }
  if (!["ga", "beta", "relay"].includes(connect.api)) {
    throw new RtSessionsError("connection_failed", `Unknown connection flow: ${connect.api}.`);
  }
  const secret = session.client_secret || {};
  if (typeof secret.expires_at === "number" && secret.expires_at * 1000 <= Date.now()) {
    throw new RtSessionsError("session_expired", "The session's key has expired; ask for a new session.");
  }
  const track = mediaStream && mediaStream.getAudioTracks()[0];
  if (!track) throw new RtSessionsError("microphone_unavailable", "The media stream has no audio track.");
  const transport = chooseTransport(connect, options.transport || "auto");
  const detector = turnDetectorFor(clientTurnsOf(session), options);
  if (transport === "websocket") return connectWebSocket(connect, secret, mediaStream, detector, callbacks, options);
  return connectWebRTC(connect, secret, track, mediaStream, detector, callbacks, options);
}

/** A timeout that also fires when the caller's signal does; `done()` clears both. */
function deadline(options) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), options.timeoutMs ?? settings.connectTimeoutMs);
  const onAbort = () => controller.abort();
  if (options.signal) options.signal.addEventListener("abort", onAbort, { once: true });
  const done = () => {
    clearTimeout(timer);
    if (options.signal) options.signal.removeEventListener("abort", onAbort);
  };
  return { signal: controller.signal, done };
}

/** Rejects with `error()` when the deadline passes first (resolves like `promise` otherwise). */
function beforeDeadline(promise, limit, error) {
  return new Promise((resolve, reject) => {
    const onDeadline = () => reject(error());
    if (limit.signal.aborted) onDeadline();
    limit.signal.addEventListener("abort", onDeadline, { once: true });
    promise.then(resolve, reject).finally(() => limit.signal.removeEventListener("abort", onDeadline));
  });
}

/** An AudioContext with the worklet: audio (24 kHz PCM16 frames) and levels, or levels only. */
async function startWorklet(mediaStream, { audio }) {
  const context = audio ? new AudioContext({ sampleRate: 24000 }) : new AudioContext();
  try {
    await context.audioWorklet.addModule(settings.workletUrl);
    const source = context.createMediaStreamSource(mediaStream);
    const node = new AudioWorkletNode(context, "rt-sessions-pcm16", {
      numberOfInputs: 1,
      numberOfOutputs: 1,
      channelCount: 1,
      channelCountMode: "explicit",
      processorOptions: { frameSamples: 2400, audio },
    });
    const stop = () => {
      try { node.port.postMessage("stop"); } catch (e) { /* already gone */ }
      node.port.onmessage = null;
      node.disconnect();
      source.disconnect();
      if (context.state !== "closed") context.close().catch(() => {});
    };
    // Started by run(): the caller sets node.port.onmessage first.
    const run = async () => {
      source.connect(node);
      node.connect(context.destination);  // silent (the worklet writes no output): keeps it pulled
      if (context.state === "suspended") await context.resume();
    };
    return { context, node, stop, run };
  } catch (error) {
    if (context.state !== "closed") context.close().catch(() => {});
    throw error;
  }
}

function audioBlocked() {
  return new RtSessionsError(
    "microphone_unavailable",
    "The browser did not start processing the microphone's audio (call this from a click or a key press).",
  );
}

async function connectWebRTC(connect, secret, track, mediaStream, detector, callbacks, options) {
  if (!connect.webrtc_url) throw new RtSessionsError("connection_failed", "The session has no WebRTC address.");
  const pc = new RTCPeerConnection();
  pc.addTrack(track, mediaStream);
  const channel = pc.createDataChannel("oai-events");
  let levels = null;
  const channelOpen = () => channel.readyState === "open";
  const send = (event) => {
    if (!channelOpen()) return false;
    channel.send(JSON.stringify(event));
    return true;
  };
  const ends = connectionEnds({
    detector,
    minCommitMs: MIN_COMMIT_MS + WEBRTC_COMMIT_MARGIN_MS,
    isOpen: channelOpen,
    send,
    stopAudio: () => {
      if (levels) levels.stop();
    },
    release: () => {
      try { channel.close(); } catch (e) { /* already closed */ }
      pc.close();
    },
    callbacks,
    options,
  });
  const { tracker, finish } = ends;
  const fail = (code, message, extra) => {
    finish();
    return new RtSessionsError(code, message, extra);
  };
  const onEvent = eventHandler(callbacks, (event) => tracker.observe(event));

  // Connected means the events can flow: a network path found (ICE) and the data channel open.
  let connected = false;
  let channelOpened, noPath;
  const reachable = new Promise((resolve, reject) => { channelOpened = resolve; noPath = reject; });
  reachable.catch(() => {});  // awaited once the answer is applied; a failure before that is not unhandled
  const unreachable = () => new RtSessionsError(
    "connection_failed", "The transcription service could not be reached over WebRTC (no network path).",
  );
  channel.addEventListener("open", () => channelOpened());
  channel.addEventListener("message", (message) => { if (!ends.closed) onEvent(message.data); });
  channel.addEventListener("close", () => {
    tracker.abandon();
    if (!connected) noPath(unreachable());
  });
  pc.addEventListener("connectionstatechange", () => {
    if (ends.closed || pc.connectionState !== "failed") return;
    if (!connected) {
      noPath(unreachable());
    } else {
      if (!ends.closing && callbacks.onError) {
        callbacks.onError(new RtSessionsError("connection_failed", "The connection was lost."));
      }
      finish();
    }
  });

  const limit = deadline(options);
  const timedOut = (error) => () => {
    if (options.signal && options.signal.aborted) return fail("aborted", "Cancelled.");
    finish();
    return error;
  };
  try {
    notifyState(callbacks, "connecting");
    if (detector) {
      try {
        levels = await startWorklet(mediaStream, { audio: false });
      } catch (error) {
        throw fail("unsupported_browser", "This browser cannot measure the microphone's level (AudioWorklet).", {
          cause: error,
        });
      }
    }
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    let response;
    try {
      response = await fetch(connect.webrtc_url, {
        method: "POST",
        body: offer.sdp,
        headers: { Authorization: "Bearer " + secret.value, "Content-Type": "application/sdp" },
        signal: limit.signal,
        credentials: "omit",
      });
    } catch (error) {
      if (options.signal && options.signal.aborted) throw fail("aborted", "Cancelled.", { cause: error });
      if (limit.signal.aborted) {
        throw timedOut(new RtSessionsError("connection_failed", "The transcription service did not answer in time."))();
      }
      throw fail("connection_failed", "The transcription service could not be reached.", { cause: error });
    }
    const answer = await response.text();
    if (!response.ok) {
      throw fail("connection_failed", `The transcription service refused the connection (HTTP ${response.status}).`, {
        status: response.status,
        retryAfter: parseRetryAfter(response.headers.get("Retry-After")),
      });
    }
    if (!/^v=0\r?\n/.test(answer)) {
      throw fail("connection_failed", "The transcription service did not answer with an SDP description.", {
        status: response.status,
      });
    }
    try {
      await pc.setRemoteDescription({ type: "answer", sdp: answer });
    } catch (error) {
      throw fail("connection_failed", "The transcription service's SDP answer was not usable.", { cause: error });
    }
    await beforeDeadline(reachable, limit, timedOut(unreachable()));
    if (ends.closed) throw unreachable();
    if (levels) {
      levels.node.port.onmessage = ({ data }) => {
        if (ends.closing || ends.closed || !data || !data.levels) return;
        for (const action of detector.feed(data.levels)) ends.act(action);
      };
      await beforeDeadline(levels.run(), limit, audioBlocked);
    }
    connected = true;
    notifyState(callbacks, "connected");
  } catch (error) {
    if (error instanceof RtSessionsError) {
      finish();
      throw error;
    }
    throw fail("connection_failed", "Could not set up the connection.", { cause: error });
  } finally {
    limit.done();
  }
  return {
    transport: "webrtc",
    peerConnection: pc,
    dataChannel: channel,
    socket: null,
    clientTurns: detector ? { silence_duration_ms: detector.silenceMs, max_turn_ms: detector.maxTurnMs } : null,
    commit: ends.commit,
    close: ends.close,
  };
}

const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|\[::1\])$/;

/** Whether `url` may carry the key: wss:, or ws: to this computer only. */
export function websocketUrlAllowed(url) {
  let parsed;
  try {
    parsed = new URL(url);
  } catch (e) {
    return false;
  }
  if (parsed.protocol === "wss:") return true;
  return parsed.protocol === "ws:" && LOOPBACK.test(parsed.hostname);
}

function base64(buffer) {
  const bytes = new Uint8Array(buffer);
  let text = "";
  for (let i = 0; i < bytes.length; i += 0x8000) text += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(text);
}

async function connectWebSocket(connect, secret, mediaStream, detector, callbacks, options) {
  const url = connect.websocket_url;
  if (!url) throw new RtSessionsError("connection_failed", "The session has no WebSocket address.");
  if (!websocketUrlAllowed(url)) {
    throw new RtSessionsError(
      "connection_failed",
      "The transcription service's WebSocket address is not encrypted (wss: is required except on this computer).",
    );
  }
  let audio = null, socket = null;
  let opened = false, connected = false;
  // A socket that closes after opening but before the audio runs fails the setup (not onError).
  let lostDuringSetup;
  const lost = new Promise((resolve, reject) => { lostDuringSetup = reject; });
  lost.catch(() => {});
  const socketOpen = () => !!socket && socket.readyState === WebSocket.OPEN;
  const send = (event) => {
    if (!socketOpen()) return false;
    socket.send(JSON.stringify(event));
    return true;
  };
  const ends = connectionEnds({
    detector,
    minCommitMs: MIN_COMMIT_MS,
    isOpen: socketOpen,
    send,
    stopAudio: () => {
      if (audio) audio.stop();
    },
    release: () => {
      if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
    },
    callbacks,
    options,
  });
  const { tracker, finish } = ends;
  const fail = (code, message, extra) => {
    finish();
    return new RtSessionsError(code, message, extra);
  };
  // A failure once the socket is open: it fails the setup while that runs, else it goes to onError.
  const lose = (error) => {
    if (!connected) lostDuringSetup(error);
    else if (!ends.closing && callbacks.onError) callbacks.onError(error);
    finish();
  };
  const onEvent = eventHandler(callbacks, (event) => tracker.observe(event));
  const limit = deadline(options);
  try {
    notifyState(callbacks, "connecting");
    // The browser resamples the microphone to the context's rate: 24 kHz, what the Realtime API takes.
    try {
      audio = await startWorklet(mediaStream, { audio: true });
    } catch (error) {
      throw fail("unsupported_browser", "This browser could not capture the microphone as 24 kHz audio.", {
        cause: error,
      });
    }
    await new Promise((resolve, reject) => {
      const protocols = ["realtime", "openai-insecure-api-key." + secret.value];
      if (connect.api === "beta") protocols.push("openai-beta.realtime-v1");
      try {
        socket = new WebSocket(url, protocols);
      } catch (error) {
        reject(fail("connection_failed", "The transcription service's WebSocket address is not usable.", { cause: error }));
        return;
      }
      const onDeadline = () => {
        if (options.signal && options.signal.aborted) reject(fail("aborted", "Cancelled."));
        else reject(fail("connection_failed", "The transcription service did not answer in time."));
      };
      limit.signal.addEventListener("abort", onDeadline, { once: true });
      socket.addEventListener("open", () => {
        limit.signal.removeEventListener("abort", onDeadline);
        if (ends.closed) return;
        opened = true;
        resolve();
      });
      socket.addEventListener("message", (message) => {
        if (!ends.closed && typeof message.data === "string") onEvent(message.data);
      });
      socket.addEventListener("close", () => {
        limit.signal.removeEventListener("abort", onDeadline);
        if (ends.closed) return;
        if (!opened) {
          // A browser does not say why an upgrade failed: an invalid, expired or used key looks the same.
          reject(fail("connection_failed", "The transcription service refused the connection."));
          return;
        }
        lose(new RtSessionsError("connection_failed", "The connection was lost."));
      });
    });
    audio.node.port.onmessage = ({ data }) => {
      if (ends.closing || ends.closed) return;
      const frame = data instanceof ArrayBuffer ? data : data && data.audio;
      if (frame) {
        if (!send({ type: "input_audio_buffer.append", audio: base64(frame) })) return;
        // After the frame: a commit ends the buffer with it.
        for (const action of detector && data.levels ? detector.feed(data.levels) : []) ends.act(action);
      } else if (data && data.sampleRate && data.sampleRate !== 24000) {
        lose(new RtSessionsError("unsupported_browser", "The browser did not capture audio at 24 kHz."));
      }
    };
    await Promise.race([beforeDeadline(audio.run(), limit, audioBlocked), lost]);
    if (ends.closed) throw new RtSessionsError("connection_failed", "The connection was lost.");
    connected = true;
    notifyState(callbacks, "connected");
  } catch (error) {
    if (error instanceof RtSessionsError) {
      finish();
      throw error;
    }
    if (ends.closed) throw new RtSessionsError("connection_failed", "The connection was lost.", { cause: error });
    throw fail("connection_failed", "Could not set up the connection.", { cause: error });
  } finally {
    limit.done();
  }
  return {
    transport: "websocket",
    peerConnection: null,
    dataChannel: null,
    socket,
    clientTurns: detector ? { silence_duration_ms: detector.silenceMs, max_turn_ms: detector.maxTurnMs } : null,
    commit: ends.commit,
    close: ends.close,
  };
}

/**
 * The whole flow: microphone first (so that the short-lived key does not expire while the user answers the
 * permission prompt), then the session, then the connection. On failure the microphone is released.
 *
 * With `callbacks.onError`, every failure (the server's codes, the microphone, the network, the connection, the
 * browser) is reported there and the promise resolves to null; without it, the promise rejects with the
 * RtSessionsError. A start cancelled by `options.signal` resolves to null without calling onError (without
 * onError it rejects with `aborted`).
 *
 * @param {SessionRequest} [overrides]  the request body: `preset` and any override the API takes
 * @param {TranscriptionCallbacks} [callbacks]
 * @param {RequestOptions & {audio?: MediaTrackConstraints|boolean, transport?: "auto"|"webrtc"|"websocket",
 *   timeoutMs?: number, closeTimeoutMs?: number, vad?: VadOptions}} [options]
 * @returns {Promise<{session: TranscriptionSession, stream: MediaStream, connection: TranscriptionConnection,
 *   commit: () => boolean, close: () => Promise<void>}|null>}  `close()` stops the microphone at once, commits
 *   speech not yet committed (client turns) and resolves once its transcript has arrived and the connection is
 *   closed; `commit()` ends the current turn now (push-to-talk).
 * @throws {RtSessionsError} only without onError
 */
export async function startTranscription(overrides = {}, callbacks = {}, options = {}) {
  const checkAborted = () => {
    if (options.signal && options.signal.aborted) throw new RtSessionsError("aborted", "Cancelled.");
  };
  let stream = null;
  try {
    if (!TRANSPORTS.some(transportSupported)) {
      throw new RtSessionsError("unsupported_browser", "This browser supports neither WebRTC nor AudioWorklet.");
    }
    notifyState(callbacks, "microphone");
    stream = await getMicrophone(options.audio ?? true);
    checkAborted();
    notifyState(callbacks, "session");
    const session = await createSession(overrides, options);
    if (callbacks.onSession) callbacks.onSession(session);
    checkAborted();
    const connection = await connectTranscription(session, stream, callbacks, options);
    const microphone = stream;
    const close = () => {
      const closed = connection.close();
      stopStream(microphone);
      return closed;
    };
    if (options.signal) {
      if (options.signal.aborted) {
        close();
        checkAborted();
      }
      options.signal.addEventListener("abort", close, { once: true });
    }
    return { session, stream, connection, commit: () => connection.commit(), close };
  } catch (error) {
    stopStream(stream);
    const failure = error instanceof RtSessionsError
      ? error
      : new RtSessionsError("unexpected_error", String((error && error.message) || error), { cause: error });
    if (!callbacks.onError) throw failure;
    if (failure.code !== "aborted") callbacks.onError(failure);
    return null;
  }
}

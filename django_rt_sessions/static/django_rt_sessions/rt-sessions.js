/**
 * django-rt-sessions browser client: a dependency-free ES module.
 *
 *   import { startTranscription } from "/static/django_rt_sessions/rt-sessions.js";
 *   const handle = await startTranscription({ preset: "dictation", language: "fr" }, {
 *     onDelta: ({ itemId, delta }) => ..., onCompleted: ({ itemId, transcript }) => ..., onError: (err) => ...,
 *   });
 *   ...
 *   handle.close();
 *
 * The site's API (docs/http-api.md) is reached at `baseUrl` (default "/rt/", see configure()) with the session cookie and
 * the CSRF token (the `csrftoken` cookie, or a `csrfToken` option). Every failure is an RtSessionsError whose
 * `code` is the server's stable error code (invalid, override_not_allowed, not_authenticated, permission_denied,
 * preset_forbidden, preset_not_found, rate_limited, quota_exceeded, rate_limit_unavailable, service_unavailable,
 * upstream_error,
 * upstream_unavailable, upstream_timeout) or one of this module's own: microphone_denied,
 * microphone_unavailable, network_error, bad_response, session_expired, connection_failed, realtime_error,
 * aborted.
 *
 * Two transports, with the same callbacks and error codes: WebRTC (the SDP offer to `connect.webrtc_url`) and
 * WebSocket (`connect.websocket_url`, the microphone sent as PCM16 24 kHz from an AudioWorklet,
 * rt-sessions-pcm16-worklet.js beside this file). `transport: "auto"` (the default) takes the first of
 * `connect.transports` this browser supports.
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
 * @property {string[]} overridable  any of "language", "prompt", "noise_reduction"
 * @property {number} expires_after_seconds
 * @property {Object} session
 */

/**
 * @typedef {Object} ConnectInfo
 * @property {"ga"|"beta"} api
 * @property {string} webrtc_url     where the browser posts its SDP offer
 * @property {string} websocket_url  the realtime WebSocket (wss:, or ws: on loopback)
 * @property {string[]} [transports] what the session's model supports, preferred first
 */

/**
 * @typedef {Object} TranscriptionSession  the server's 201 body (the beta endpoint's "Returns" shape plus `connect`)
 * @property {{value: string, expires_at: number}} client_secret  the ephemeral key and its expiry (Unix seconds)
 * @property {string} preset
 * @property {string|null} id
 * @property {ConnectInfo} connect
 */

/**
 * @typedef {Object} SessionRequest
 * @property {string} [preset]          preset name; omitted: the default preset
 * @property {string} [language]        ISO-639-1 override (if the preset allows it)
 * @property {string} [prompt]          prompt override (if the preset allows it)
 * @property {"near_field"|"far_field"|null} [noiseReduction]  override; null turns noise reduction off
 */

/**
 * @typedef {Object} RequestOptions
 * @property {string} [baseUrl]     overrides the configured base URL for this call
 * @property {string} [csrfToken]   overrides the CSRF token for this call
 * @property {AbortSignal} [signal]
 */

/**
 * @typedef {Object} TranscriptionCallbacks
 * @property {(d: {itemId: string, delta: string}) => void} [onDelta]
 * @property {(c: {itemId: string, transcript: string}) => void} [onCompleted]
 * @property {(e: RtSessionsError) => void} [onError]      errors after the connection is up
 * @property {(event: Object) => void} [onEvent]           every data-channel event, parsed
 * @property {(state: string) => void} [onStateChange]     "microphone", "session", "connecting", "connected", "closed"
 * @property {(state: string) => void} [onStatus]          the same as onStateChange (its former name)
 * @property {(s: TranscriptionSession) => void} [onSession]  the session, once issued (do not log its key)
 */

/**
 * @typedef {Object} TranscriptionConnection
 * @property {"webrtc"|"websocket"} transport
 * @property {RTCPeerConnection|null} peerConnection  (webrtc)
 * @property {RTCDataChannel|null} dataChannel       (webrtc)
 * @property {WebSocket|null} socket                 (websocket)
 * @property {() => void} close   closes the connection (and, for websocket, its AudioWorklet and AudioContext)
 */

const settings = {
  baseUrl: "/rt/",
  /** @type {string|null} */
  csrfToken: null,
  connectTimeoutMs: 15000,
  workletUrl: new URL("./rt-sessions-pcm16-worklet.js", import.meta.url).href,
};

/**
 * Set module-wide options.
 * @param {{baseUrl?: string, csrfToken?: string|null, connectTimeoutMs?: number, sdpTimeoutMs?: number,
 *   workletUrl?: string}} options
 */
export function configure(options = {}) {
  if (options.baseUrl !== undefined) {
    settings.baseUrl = options.baseUrl.endsWith("/") ? options.baseUrl : options.baseUrl + "/";
  }
  if (options.csrfToken !== undefined) settings.csrfToken = options.csrfToken;
  if (options.connectTimeoutMs !== undefined) settings.connectTimeoutMs = options.connectTimeoutMs;
  if (options.sdpTimeoutMs !== undefined) settings.connectTimeoutMs = options.sdpTimeoutMs;  // its former name
  if (options.workletUrl !== undefined) settings.workletUrl = options.workletUrl;
}

/** An error with the server's stable code (or one of this module's own codes). */
export class RtSessionsError extends Error {
  /**
   * @param {string} code
   * @param {string} message
   * @param {{status?: number|null, retryAfter?: number|null, errors?: Object|null, cause?: unknown}} [extra]
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

async function request(path, init, options) {
  let response;
  try {
    response = await fetch(url(path, options), {
      credentials: "same-origin",
      signal: options.signal,
      ...init,
      headers: { Accept: "application/json", ...(init.headers || {}) },
    });
  } catch (error) {
    if (error && error.name === "AbortError") throw new RtSessionsError("aborted", "Cancelled.", { cause: error });
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

/**
 * Ask the site for an ephemeral transcription session (POST transcription-sessions/).
 * @param {SessionRequest} [params]
 * @param {RequestOptions} [options]
 * @returns {Promise<TranscriptionSession>}
 * @throws {RtSessionsError}
 */
export async function createSession(params = {}, options = {}) {
  /** @type {Object<string, unknown>} */
  const payload = {};
  if (params.preset) payload.preset = params.preset;
  if (params.language !== undefined && params.language !== "") payload.language = params.language;
  if (params.prompt !== undefined) payload.prompt = params.prompt;
  if (params.noiseReduction !== undefined) payload.noise_reduction = params.noiseReduction;
  const headers = { "Content-Type": "application/json" };
  const token = csrfTokenFrom(options);
  if (token) headers["X-CSRFToken"] = token;
  const session = await request("transcription-sessions/", {
    method: "POST",
    headers,
    body: JSON.stringify(payload),
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
 * @throws {RtSessionsError} connection_failed
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
      throw new RtSessionsError("connection_failed", `This browser cannot use the ${requested} transport.`);
    }
    return requested;
  }
  const usable = offered.find((transport) => TRANSPORTS.includes(transport) && transportSupported(transport));
  if (!usable) {
    throw new RtSessionsError(
      "connection_failed",
      `This browser supports none of the session's transports (${offered.join(", ") || "none"}).`,
    );
  }
  return usable;
}

function notifyState(callbacks, state) {
  if (callbacks.onStateChange) callbacks.onStateChange(state);
  if (callbacks.onStatus) callbacks.onStatus(state);
}

/** The transcription events, the same for both transports. */
function eventHandler(callbacks) {
  return (data) => {
    let event;
    try {
      event = JSON.parse(data);
    } catch (e) {
      return;
    }
    if (!event || typeof event !== "object") return;
    if (callbacks.onEvent) callbacks.onEvent(event);
    switch (event.type) {
      case "conversation.item.input_audio_transcription.delta":
        if (callbacks.onDelta) callbacks.onDelta({ itemId: event.item_id, delta: event.delta || "" });
        break;
      case "conversation.item.input_audio_transcription.completed":
        if (callbacks.onCompleted) {
          callbacks.onCompleted({ itemId: event.item_id, transcript: event.transcript || "" });
        }
        break;
      case "conversation.item.input_audio_transcription.failed":
      case "error": {
        const err = (event.error || {});
        if (callbacks.onError) {
          callbacks.onError(new RtSessionsError("realtime_error", err.message || "The transcription failed."));
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
 *
 * Either way the transcription configuration is bound to the ephemeral key: no model parameter and no
 * session.update are sent.
 *
 * @param {TranscriptionSession} session
 * @param {MediaStream} mediaStream  a stream with an audio track (the caller owns it and stops it)
 * @param {TranscriptionCallbacks} [callbacks]
 * @param {{signal?: AbortSignal, timeoutMs?: number, transport?: "auto"|"webrtc"|"websocket"}} [options]
 * @returns {Promise<TranscriptionConnection>}  resolves once connected (SDP answer applied, or socket open)
 * @throws {RtSessionsError} connection_failed, session_expired, microphone_unavailable, aborted
 */
export async function connectTranscription(session, mediaStream, callbacks = {}, options = {}) {
  const connect = session && session.connect;
  if (!connect || (!connect.webrtc_url && !connect.websocket_url)) {
    throw new RtSessionsError("connection_failed", "The session does not say where to connect.");
  }
  if (connect.api !== "ga" && connect.api !== "beta") {
    throw new RtSessionsError("connection_failed", `Unknown connection flow: ${connect.api}.`);
  }
  const secret = session.client_secret || {};
  if (typeof secret.expires_at === "number" && secret.expires_at * 1000 <= Date.now()) {
    throw new RtSessionsError("session_expired", "The session's key has expired; ask for a new session.");
  }
  const track = mediaStream && mediaStream.getAudioTracks()[0];
  if (!track) throw new RtSessionsError("microphone_unavailable", "The media stream has no audio track.");
  const transport = chooseTransport(connect, options.transport || "auto");
  if (transport === "websocket") return connectWebSocket(connect, secret, mediaStream, callbacks, options);
  return connectWebRTC(connect, secret, track, mediaStream, callbacks, options);
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

async function connectWebRTC(connect, secret, track, mediaStream, callbacks, options) {
  if (!connect.webrtc_url) throw new RtSessionsError("connection_failed", "The session has no WebRTC address.");
  const pc = new RTCPeerConnection();
  pc.addTrack(track, mediaStream);
  const channel = pc.createDataChannel("oai-events");
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    try { channel.close(); } catch (e) { /* already closed */ }
    pc.close();
    notifyState(callbacks, "closed");
  };
  const fail = (code, message, extra) => {
    close();
    return new RtSessionsError(code, message, extra);
  };
  const onEvent = eventHandler(callbacks);

  channel.addEventListener("open", () => { if (!closed) notifyState(callbacks, "connected"); });
  channel.addEventListener("message", (message) => onEvent(message.data));
  pc.addEventListener("connectionstatechange", () => {
    if (!closed && pc.connectionState === "failed") {
      if (callbacks.onError) callbacks.onError(new RtSessionsError("connection_failed", "The connection was lost."));
      close();
    }
  });

  const limit = deadline(options);
  try {
    notifyState(callbacks, "connecting");
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
  } catch (error) {
    if (error instanceof RtSessionsError) throw error;
    throw fail("connection_failed", "Could not set up the connection.", { cause: error });
  } finally {
    limit.done();
  }
  return { transport: "webrtc", peerConnection: pc, dataChannel: channel, socket: null, close };
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

async function connectWebSocket(connect, secret, mediaStream, callbacks, options) {
  const url = connect.websocket_url;
  if (!url) throw new RtSessionsError("connection_failed", "The session has no WebSocket address.");
  if (!websocketUrlAllowed(url)) {
    throw new RtSessionsError(
      "connection_failed",
      "The transcription service's WebSocket address is not encrypted (wss: is required except on this computer).",
    );
  }
  let context = null, source = null, worklet = null, socket = null;
  let closed = false, opened = false;
  const close = () => {
    if (closed) return;
    closed = true;
    if (worklet) {
      try { worklet.port.postMessage("stop"); } catch (e) { /* already gone */ }
      worklet.port.onmessage = null;
      worklet.disconnect();
    }
    if (source) source.disconnect();
    if (context && context.state !== "closed") context.close().catch(() => {});
    if (socket && socket.readyState <= WebSocket.OPEN) socket.close(1000);
    notifyState(callbacks, "closed");
  };
  const fail = (code, message, extra) => {
    close();
    return new RtSessionsError(code, message, extra);
  };
  const onEvent = eventHandler(callbacks);
  const limit = deadline(options);
  try {
    notifyState(callbacks, "connecting");
    // The browser resamples the microphone to the context's rate: 24 kHz, what the Realtime API takes.
    try {
      context = new AudioContext({ sampleRate: 24000 });
      await context.audioWorklet.addModule(settings.workletUrl);
      source = context.createMediaStreamSource(mediaStream);
      worklet = new AudioWorkletNode(context, "rt-sessions-pcm16", {
        numberOfInputs: 1,
        numberOfOutputs: 1,
        channelCount: 1,
        channelCountMode: "explicit",
        processorOptions: { frameSamples: 2400 },
      });
    } catch (error) {
      throw fail("connection_failed", "This browser could not capture the microphone as 24 kHz audio.", { cause: error });
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
        if (closed) return;
        opened = true;
        resolve();
      });
      socket.addEventListener("message", (message) => {
        if (!closed && typeof message.data === "string") onEvent(message.data);
      });
      socket.addEventListener("close", () => {
        limit.signal.removeEventListener("abort", onDeadline);
        if (closed) return;
        if (!opened) {
          // A browser does not say why an upgrade failed: an invalid, expired or used key looks the same.
          reject(fail("connection_failed", "The transcription service refused the connection."));
          return;
        }
        if (callbacks.onError) callbacks.onError(new RtSessionsError("connection_failed", "The connection was lost."));
        close();
      });
    });
    worklet.port.onmessage = (message) => {
      if (message.data instanceof ArrayBuffer) {
        if (socket.readyState === WebSocket.OPEN) {
          socket.send(JSON.stringify({ type: "input_audio_buffer.append", audio: base64(message.data) }));
        }
      } else if (message.data && message.data.sampleRate && message.data.sampleRate !== 24000) {
        if (callbacks.onError) {
          callbacks.onError(new RtSessionsError("connection_failed", "The browser did not capture audio at 24 kHz."));
        }
        close();
      }
    };
    source.connect(worklet);
    worklet.connect(context.destination);  // silent (the worklet writes no output): keeps it pulled
    if (context.state === "suspended") await context.resume();
    notifyState(callbacks, "connected");
  } catch (error) {
    if (error instanceof RtSessionsError) throw error;
    throw fail("connection_failed", "Could not set up the connection.", { cause: error });
  } finally {
    limit.done();
  }
  return { transport: "websocket", peerConnection: null, dataChannel: null, socket, close };
}

/**
 * The whole flow: microphone first (so that the short-lived key does not expire while the user answers the
 * permission prompt), then the session, then the connection. On failure the microphone is released.
 *
 * @param {SessionRequest} [params]
 * @param {TranscriptionCallbacks} [callbacks]
 * @param {RequestOptions & {audio?: MediaTrackConstraints|boolean, transport?: "auto"|"webrtc"|"websocket",
 *   timeoutMs?: number}} [options]
 * @returns {Promise<{session: TranscriptionSession, stream: MediaStream, connection: TranscriptionConnection,
 *   close: () => void}>}  `close()` ends everything: the connection (socket or peer connection), the
 *   AudioWorklet, and the microphone's tracks.
 * @throws {RtSessionsError}
 */
export async function startTranscription(params = {}, callbacks = {}, options = {}) {
  const checkAborted = () => {
    if (options.signal && options.signal.aborted) throw new RtSessionsError("aborted", "Cancelled.");
  };
  notifyState(callbacks, "microphone");
  const stream = await getMicrophone(options.audio ?? true);
  try {
    checkAborted();
    notifyState(callbacks, "session");
    const session = await createSession(params, options);
    if (callbacks.onSession) callbacks.onSession(session);
    checkAborted();
    const connection = await connectTranscription(session, stream, callbacks, options);
    const close = () => {
      connection.close();
      stopStream(stream);
    };
    if (options.signal) options.signal.addEventListener("abort", close, { once: true });
    return { session, stream, connection, close };
  } catch (error) {
    stopStream(stream);
    throw error;
  }
}

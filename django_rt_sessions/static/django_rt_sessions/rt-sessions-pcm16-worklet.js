/**
 * django-rt-sessions: the AudioWorklet of rt-sessions.js.
 *
 * Mixes the input down to mono and measures its level: the RMS of every 10 ms block, in dBFS (-100 for
 * digital silence). With `processorOptions.audio` (the WebSocket transport, in an AudioContext created at
 * 24 kHz: the browser resamples the microphone to the context's rate) it also converts the samples to PCM16
 * little-endian and posts `{audio: ArrayBuffer, levels: Float32Array}` every `frameSamples` samples (100 ms
 * by default), which the main thread sends as `input_audio_buffer.append`. Without it (the WebRTC
 * transport's local turn detection) it posts `{levels}` every 100 ms. The levels feed the client's turn
 * detection on the main thread. They are measured here rather than by polling an AnalyserNode because a
 * page's timers are throttled to once a second when its tab is hidden, while audio and these messages keep
 * flowing. The message "stop" ends it.
 */
const BLOCK_MS = 10;
const BLOCKS_PER_MESSAGE = 10;
const FLOOR_DB = -100;

class RtSessionsPcm16 extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const settings = (options && options.processorOptions) || {};
    this.sendAudio = settings.audio !== false;
    const frameSamples = settings.frameSamples || 2400;
    this.frame = this.sendAudio ? new DataView(new ArrayBuffer(frameSamples * 2)) : null;
    this.samples = frameSamples;
    this.filled = 0;
    this.blockSamples = Math.max(1, Math.round((sampleRate * BLOCK_MS) / 1000));
    this.blockFilled = 0;
    this.blockEnergy = 0;
    this.levels = [];
    this.running = true;
    this.port.onmessage = (event) => {
      if (event.data === "stop") this.running = false;
    };
    // The main thread checks the rate: this module converts samples, it never resamples.
    this.port.postMessage({ sampleRate });
  }

  process(inputs) {
    if (!this.running) return false;
    const channels = inputs[0];
    if (!channels || channels.length === 0) return true;
    const count = channels[0].length;
    for (let i = 0; i < count; i++) {
      let value = 0;
      for (let c = 0; c < channels.length; c++) value += channels[c][i];
      value = Math.max(-1, Math.min(1, value / channels.length));
      this.blockEnergy += value * value;
      this.blockFilled += 1;
      if (this.blockFilled === this.blockSamples) {
        const meanSquare = this.blockEnergy / this.blockSamples;
        this.levels.push(meanSquare > 0 ? Math.max(FLOOR_DB, 10 * Math.log10(meanSquare)) : FLOOR_DB);
        this.blockFilled = 0;
        this.blockEnergy = 0;
        if (!this.sendAudio && this.levels.length === BLOCKS_PER_MESSAGE) this.postLevels(null);
      }
      if (!this.sendAudio) continue;
      this.frame.setInt16(this.filled * 2, value < 0 ? value * 0x8000 : value * 0x7fff, true);
      this.filled += 1;
      if (this.filled === this.samples) {
        this.postLevels(this.frame.buffer.slice(0));
        this.filled = 0;
      }
    }
    return true;
  }

  postLevels(audio) {
    const levels = Float32Array.from(this.levels);
    this.levels = [];
    const transfer = audio ? [audio, levels.buffer] : [levels.buffer];
    this.port.postMessage(audio ? { audio, levels } : { levels }, transfer);
  }
}

registerProcessor("rt-sessions-pcm16", RtSessionsPcm16);

/**
 * django-rt-sessions: the AudioWorklet of rt-sessions.js's WebSocket transport.
 *
 * Runs in an AudioContext created at 24 kHz (the browser resamples the microphone to the context's rate), mixes
 * the input down to mono and posts frames of PCM16 little-endian samples (an ArrayBuffer of `frameSamples`
 * samples, 100 ms by default) to the main thread, which sends them as `input_audio_buffer.append`.
 * The message "stop" ends it.
 */
class RtSessionsPcm16 extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const frameSamples = (options && options.processorOptions && options.processorOptions.frameSamples) || 2400;
    this.frame = new DataView(new ArrayBuffer(frameSamples * 2));
    this.samples = frameSamples;
    this.filled = 0;
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
      this.frame.setInt16(this.filled * 2, value < 0 ? value * 0x8000 : value * 0x7fff, true);
      this.filled += 1;
      if (this.filled === this.samples) {
        const buffer = this.frame.buffer.slice(0);
        this.port.postMessage(buffer, [buffer]);
        this.filled = 0;
      }
    }
    return true;
  }
}

registerProcessor("rt-sessions-pcm16", RtSessionsPcm16);

// The Node/Express comparison of the load benchmark: a minimal token route like the one in OpenAI's own
// realtime samples (a server-side fetch to /v1/realtime/client_secrets, the answer passed through).
// No authentication, no audit, no rate limit.
//
//   npm ci && PORT=8792 OPENAI_BASE_URL=http://127.0.0.1:8790/v1 node server.js
import express from "express";

const port = Number(process.env.PORT || 8792);
const host = process.env.HOST || "127.0.0.1";
const baseUrl = (process.env.OPENAI_BASE_URL || "https://api.openai.com/v1").replace(/\/$/, "");
const apiKey = process.env.OPENAI_API_KEY || "sk-bench";

const sessionConfig = JSON.stringify({
  expires_after: { anchor: "created_at", seconds: 60 },
  session: {
    type: "transcription",
    audio: {
      input: {
        format: { type: "audio/pcm", rate: 24000 },
        noise_reduction: { type: "near_field" },
        transcription: { model: "gpt-transcribe", language: "en", prompt: "" },
        turn_detection: { type: "server_vad", threshold: 0.5, prefix_padding_ms: 300, silence_duration_ms: 500 },
      },
    },
  },
});

const app = express();
app.use(express.json());

async function token(req, res) {
  try {
    const response = await fetch(`${baseUrl}/realtime/client_secrets`, {
      method: "POST",
      headers: { Authorization: `Bearer ${apiKey}`, "Content-Type": "application/json" },
      body: sessionConfig,
    });
    const data = await response.json();
    res.status(201).json(data);
  } catch (error) {
    console.error("Token generation error:", error);
    res.status(500).json({ error: "Failed to generate token" });
  }
}

app.post("/token", token);
app.get("/token", token);

app.listen(port, host, () => {
  console.log(`express token route on http://${host}:${port}/token`);
});

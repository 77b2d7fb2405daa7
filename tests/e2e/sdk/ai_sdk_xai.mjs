// The Vercel AI SDK (`ai` + `@ai-sdk/xai`), unchanged, against the xAI REST door of a real
// server: `experimental_generateVideo` with `createXai({ baseURL }).video("grok-imagine-video")`.
//
//   OI_NODE_DIR=.venv-sdk/node-ai-xai OI_KEY=... OI_HTTP_URL=http://127.0.0.1:PORT/v1 \
//     node tests/e2e/sdk/ai_sdk_xai.mjs '{"mode": "t2v", "out": "/tmp/a.mp4", ...}'
//
// Modes: "t2v" (aspectRatio, resolution, duration), "i2v" (image: a PNG path, sent as bytes),
// "edit" and "extend" (video: an MP4 path, sent as a data URL in providerOptions.xai.videoUrl;
// "extend" adds `duration` seconds). Any mode with "expectError": true prints the error the
// SDK raised instead of failing.
// Prints one JSON line: the saved file and what the SDK reported, or the error.
//
// The packages live in OI_NODE_DIR (made by `make .venv-sdk/node-ai-xai/.ok`); this file is
// outside it, so they are resolved from there rather than by a bare `import`.
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const nodeDir = process.env.OI_NODE_DIR;
if (!nodeDir) throw new Error("OI_NODE_DIR: the folder holding node_modules/ai");
const require = createRequire(join(resolve(nodeDir), "package.json"));
const load = async (name) => import(pathToFileURL(require.resolve(name)).href);
const { experimental_generateVideo: generateVideo } = await load("ai");
const { createXai } = await load("@ai-sdk/xai");

const args = JSON.parse(process.argv[2] ?? "{}");
const xai = createXai({ apiKey: process.env.OI_KEY, baseURL: process.env.OI_HTTP_URL });

// The SDK's default download refuses loopback and private addresses (SSRF protection), and a
// test server answers on 127.0.0.1, so the result is fetched with plain `fetch` instead.
async function download({ url, abortSignal }) {
  const response = await fetch(url, { signal: abortSignal });
  if (!response.ok) throw new Error(`download ${url}: HTTP ${response.status}`);
  return {
    data: new Uint8Array(await response.arrayBuffer()),
    mediaType: response.headers.get("content-type") ?? undefined,
  };
}

function call() {
  const common = {
    model: xai.video(args.model ?? "grok-imagine-video"),
    maxRetries: 0,
    download,
    poll: { intervalMs: 250, timeoutMs: (args.timeoutS ?? 240) * 1000 },
    ...(args.generateAudio != null ? { generateAudio: args.generateAudio } : {}),
  };
  const prompt = args.prompt ?? "a lighthouse in a storm";
  switch (args.mode) {
    case "t2v":
      return generateVideo({
        ...common,
        prompt,
        aspectRatio: args.aspectRatio,
        duration: args.duration,
        ...(args.resolution != null ? { resolution: args.resolution } : {}),
        providerOptions: args.xaiResolution ? { xai: { resolution: args.xaiResolution } } : {},
      });
    case "i2v":
      return generateVideo({
        ...common,
        prompt: { image: new Uint8Array(readFileSync(args.image)), text: prompt },
        duration: args.duration,
        providerOptions: args.xaiResolution ? { xai: { resolution: args.xaiResolution } } : {},
      });
    case "edit":
    case "extend": {
      const videoUrl = `data:video/mp4;base64,${readFileSync(args.video).toString("base64")}`;
      return generateVideo({
        ...common,
        prompt,
        ...(args.duration != null ? { duration: args.duration } : {}),
        providerOptions: { xai: { mode: `${args.mode}-video`, videoUrl } },
      });
    }
    default:
      throw new Error(`unknown mode ${args.mode}`);
  }
}

function describe(error) {
  return {
    name: error?.name,
    message: error?.message,
    statusCode: error?.statusCode,
    isRetryable: error?.isRetryable,
    responseBody: error?.responseBody,
    data: error?.data,
    url: error?.url,
  };
}

try {
  const result = await call();
  const video = result.video;
  writeFileSync(args.out, video.uint8Array);
  console.log(
    JSON.stringify({
      ok: true,
      file: args.out,
      bytes: video.uint8Array.length,
      mediaType: video.mediaType,
      providerMetadata: result.providerMetadata,
      warnings: result.warnings,
      responses: result.responses.map((r) => ({ modelId: r.modelId })),
    }),
  );
} catch (error) {
  if (!args.expectError) throw error;
  console.log(JSON.stringify({ ok: false, error: describe(error) }));
}

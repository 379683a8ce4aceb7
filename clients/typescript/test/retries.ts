/**
 * `idempotent()` against the API (run by tests/integration/test_typescript_client.py):
 * the transport is the real fetch with one failure knob per scenario, the API is real.
 *
 * - lost: the first answer is lost after the API took the submission; the retry sends
 *   the same key and gets the first answer replayed (charged once);
 * - unavailable: the first answer is a 503 problem with Retry-After: 2; the retry waits
 *   that long, then gets the job.
 *
 * Prints one JSON line per scenario: what was sent, waited and answered.
 */
import { createClient, idempotent, unwrap } from "../src/client.js";

const baseUrl = process.env.GENSTUDIO_URL ?? "";
const token = process.env.GENSTUDIO_TOKEN ?? "";

async function scenario(name: "lost" | "unavailable"): Promise<void> {
  const keys: string[] = [];
  const replayed: (string | null)[] = [];
  const waits: number[] = [];
  let sent = 0;
  const api = createClient({
    baseUrl,
    token,
    fetch: async (request) => {
      sent += 1;
      keys.push(request.headers.get("Idempotency-Key") ?? "");
      if (name === "unavailable" && sent === 1) {
        const problem = { type: "about:blank", title: "Service unavailable", status: 503, detail: "down" };
        return new Response(JSON.stringify({ ...problem, code: "unavailable" }), {
          status: 503,
          headers: { "Content-Type": "application/problem+json", "Retry-After": "2" },
        });
      }
      const response = await fetch(request);
      replayed.push(response.headers.get("Idempotent-Replayed"));
      if (name === "lost" && sent === 1) {
        await response.arrayBuffer();
        throw new TypeError("fetch failed: the connection dropped before the answer");
      }
      return response;
    },
  });
  const job = await unwrap(
    idempotent(
      (key) =>
        api.POST("/v1/generate/image", {
          params: { header: { "Idempotency-Key": key } },
          body: { model: "flux-schnell", prompt: `a lighthouse, ${name}`, width: 256, height: 256 },
        }),
      { sleep: async (ms) => void waits.push(ms) },
    ),
  );
  console.log(JSON.stringify({ scenario: name, sent, keys, replayed, waits, job: job.id, cost: job.cost }));
}

await scenario("lost");
await scenario("unavailable");

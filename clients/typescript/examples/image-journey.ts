/**
 * The image journey with the typed client: submit an image, poll until it is done,
 * print the picture's URL and the balance left.
 *
 *     GENSTUDIO_URL=http://127.0.0.1:8000 GENSTUDIO_TOKEN=$(genstudio token --user <uuid>) \
 *       node dist/examples/image-journey.js "a lighthouse at dusk"
 *
 * (build it with `npx tsc --noEmit false`; the user needs credits: `genstudio credits grant`.)
 * GENSTUDIO_MODEL picks the model (default: the first image model of the catalog).
 */
import {
  ProblemError,
  type Schemas,
  createClient,
  idempotent,
  unwrap,
} from "../src/client.js";

type Job = Schemas["JobResponse"];

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);

async function main(): Promise<number> {
  const token = process.env.GENSTUDIO_TOKEN;
  if (!token) {
    console.error("set GENSTUDIO_TOKEN to a user's access token (genstudio token)");
    return 2;
  }
  const api = createClient({
    baseUrl: process.env.GENSTUDIO_URL ?? "http://127.0.0.1:8000",
    token,
  });
  const prompt = process.argv[2] ?? "a lighthouse at dusk";

  const catalog = await unwrap(api.GET("/v1/models"));
  const model =
    process.env.GENSTUDIO_MODEL ?? catalog.items.find((m) => m.kind === "image")?.id;
  if (model === undefined) {
    console.error("the catalog has no image model");
    return 1;
  }

  // one key for this submission: a retry after a lost answer is a replay, not a second charge
  let job: Job = await unwrap(
    idempotent((key) =>
      api.POST("/v1/generate/image", {
        params: { header: { "Idempotency-Key": key } },
        body: { model, prompt, width: 512, height: 512 },
      }),
    ),
  );
  console.log(`job ${job.id}: ${job.status}, ${job.cost} credits held`);

  const pollMs = Number(process.env.GENSTUDIO_POLL_MS ?? 1000);
  while (!FINISHED.has(job.status)) {
    await new Promise((resolve) => setTimeout(resolve, pollMs));
    job = await unwrap(
      api.GET("/v1/generate/{job_id}", { params: { path: { job_id: job.id } } }),
    );
  }

  const me = await unwrap(api.GET("/v1/me"));
  if (job.status !== "succeeded") {
    console.error(`job ${job.id} ${job.status}: ${job.error?.reason ?? ""} ${job.error?.message ?? ""}`);
    console.log(`balance: ${me.credits}`);
    return 1;
  }
  for (const asset of job.assets) {
    console.log(`result: ${asset.url}`);
  }
  console.log(`balance: ${me.credits}`);
  return 0;
}

try {
  process.exitCode = await main();
} catch (failure) {
  if (!(failure instanceof ProblemError)) throw failure;
  // e.g. 402 insufficient_credits (required/available), 422 naming the field at fault
  const { problem } = failure;
  console.error(`${problem.status} ${problem.code ?? problem.title}: ${problem.detail}`);
  if (problem.field) console.error(`field: ${problem.field}`);
  process.exitCode = 1;
}

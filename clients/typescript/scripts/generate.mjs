// Generate src/schema.d.ts from the API's OpenAPI document (one place for the options,
// so that `make client` and the staleness test in tests/integration produce the same file).
//
//   node scripts/generate.mjs <openapi.json | -> <out.d.ts>
//
// `-` reads the document from stdin: `genstudio openapi | node scripts/generate.mjs - src/schema.d.ts`
import { readFile, writeFile } from "node:fs/promises";
import { text } from "node:stream/consumers";
import openapiTS, { COMMENT_HEADER, astToString } from "openapi-typescript";

const [input, output] = process.argv.slice(2);
if (!input || !output) {
  console.error("usage: node scripts/generate.mjs <openapi.json | -> <out.d.ts>");
  process.exit(2);
}
const source = input === "-" ? await text(process.stdin) : await readFile(input, "utf8");
const document = JSON.parse(source);
const ast = await openapiTS(document, {
  // a field with a default may be left out of a request (the API fills it in): not
  // required in the types either (openapi-typescript 7 makes it required by default)
  defaultNonNullable: false,
});
await writeFile(output, COMMENT_HEADER + astToString(ast));

// Validates OpenAPI documents with @readme/openapi-parser (Swagger 2.0 and OpenAPI 3.0/3.1; its schemas ship
// in the package, so it works offline). Input: {"documents": [<path>, ...]}. Prints one JSON line:
// {"results": [{"valid", "errors", "warnings", "specification"}, ...]}, one per document, in order. It judges
// nothing itself: the Rust test asserts on the results.
import { readFileSync } from 'node:fs';
import { validate } from '@readme/openapi-parser';
import { input, output } from './common.mjs';

const { documents } = input();
const results = [];
for (const path of documents) {
  const document = JSON.parse(readFileSync(path, 'utf8'));
  const result = await validate(document);
  results.push({
    valid: result.valid,
    errors: (result.errors ?? []).map((error) => error.message),
    warnings: (result.warnings ?? []).map((warning) => warning.message),
    specification: result.specification,
  });
}
output({ results });

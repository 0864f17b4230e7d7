// transformers.js's tokenizer on the same texts as tokenizer-bench, from the
// same local tokenizer files (no hub access): the texts of a JSON Lines file
// repeated, encoded as one unpadded, untruncated batch; median of the runs.
//   npm install @huggingface/transformers@4.3.2   (in some folder F)
//   NODE_PATH=F/node_modules node bench/tokenizer-js.mjs MODEL_DIR TEXTS.jsonl [repeat=200] [runs=7]
// transformers.js reads tokenizer.json only, so this runs for CLIP, not for a
// SigLIP folder with just spiece.model.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const modPath = require.resolve('@huggingface/transformers', {
  paths: (process.env.NODE_PATH || '').split(':').filter(Boolean).concat([process.cwd()]),
});
const { AutoTokenizer, env } = await import(modPath);

const [model, textsFile, repeatArg, runsArg] = process.argv.slice(2);
if (!model || !textsFile) {
  console.error('usage: node tokenizer-js.mjs MODEL_DIR TEXTS.jsonl [repeat=200] [runs=7]');
  process.exit(2);
}
const repeat = Number(repeatArg ?? 200), runs = Number(runsArg ?? 7);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(model)) + '/';

const base = fs.readFileSync(textsFile, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l).text);
const texts = [];
for (let r = 0; r < repeat; ++r) texts.push(...base);

let t0 = performance.now();
const tok = await AutoTokenizer.from_pretrained(path.basename(path.resolve(model)));
const loadS = (performance.now() - t0) / 1000;

const secs = [];
let tokens = 0;
for (let r = 0; r < runs; ++r) {
  t0 = performance.now();
  const out = tok(texts, { padding: false, truncation: false, return_tensor: false });
  secs.push((performance.now() - t0) / 1000);
  tokens = out.input_ids.reduce((n, row) => n + row.length, 0);
}
secs.sort((a, b) => a - b);
const med = secs[Math.floor(secs.length / 2)];
console.log(JSON.stringify({
  model, texts: texts.length, tokens, load_s: +loadS.toFixed(3), median_s: +med.toFixed(4),
  tokens_per_s: Math.round(tokens / med), texts_per_s: Math.round(texts.length / med),
}));

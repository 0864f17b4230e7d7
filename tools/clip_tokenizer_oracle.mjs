// transformers.js's CLIP ids for strings, from a local tokenizer.json (no hub
// access), to extend the CLIP truth table of tests/data/text/tokenizers.
//   npm install @huggingface/transformers@4.3.2   (in some folder F)
//   NODE_PATH=F/node_modules node tools/clip_tokenizer_oracle.mjs MODEL_DIR STRINGS.json > out.jsonl
// Ids with the special tokens, untruncated (transformers.js truncates
// differently from Python transformers: it drops <|endoftext|>).
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(path.join(process.cwd(), 'noop.js'));
const modPath = require.resolve('@huggingface/transformers', {
  paths: (process.env.NODE_PATH || '').split(':').filter(Boolean).concat([process.cwd()]),
});
const { AutoTokenizer, env } = await import(modPath);
const [model, stringsFile] = process.argv.slice(2);
env.allowRemoteModels = false;
env.localModelPath = path.dirname(path.resolve(model)) + '/';
const tok = await AutoTokenizer.from_pretrained(path.basename(path.resolve(model)));
for (const s of JSON.parse(fs.readFileSync(stringsFile, 'utf8')))
  console.log(JSON.stringify({ text: s, ids: tok.encode(s) }));

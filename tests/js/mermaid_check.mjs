// Parses every Mermaid block given on stdin (a JSON list of strings) with @mermaid-js/parser, the parser of
// Mermaid's own newer diagram types; prints one JSON line per block and exits 1 if any failed to parse.
import { parse } from '@mermaid-js/parser';

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const blocks = JSON.parse(Buffer.concat(chunks).toString('utf8'));
let failed = 0;
for (const block of blocks) {
  const type = block.trim().split(/\s+/)[0];
  try {
    const ast = await parse(type, block);
    console.log(JSON.stringify({ ok: true, type, sections: (ast.sections || []).map((s) => [s.label, s.value]) }));
  } catch (error) {
    failed += 1;
    console.log(JSON.stringify({ ok: false, type, error: String(error.message).slice(0, 300) }));
  }
}
process.exit(failed ? 1 : 0);
